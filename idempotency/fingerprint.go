package idempotency

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// Fingerprint identifies a request: the SHA-256 of its method, target
// (path with query), content type and body. A key reused with a different
// fingerprint is refused with ErrFingerprintMismatch.
type Fingerprint [sha256.Size]byte

// String returns the fingerprint in lower-case hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// FingerprintRequest computes the fingerprint of a request. Each field is
// hashed with its length in front (8 bytes, big-endian), so no two
// different field lists hash the same input: "POST" + "/a" never meets
// "POS" + "T/a".
func FingerprintRequest(method, target, contentType string, body []byte) Fingerprint {
	h := sha256.New()
	writeField(h, []byte(method))
	writeField(h, []byte(target))
	writeField(h, []byte(contentType))
	writeField(h, body)
	var f Fingerprint
	h.Sum(f[:0])
	return f
}

func writeField(h hash.Hash, field []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(field)))
	h.Write(n[:])
	h.Write(field)
}
