package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// keyring holds a verifier's active HMAC-SHA256 keys. Each key keeps a
// pool of keyed hash states: after its first use an HMAC state resets to
// the keyed state without rehashing the key, so a verification costs the
// message's blocks and no allocation for the hash.
type keyring struct {
	keys  [][]byte
	pools []*sync.Pool
}

func newKeyring(keys [][]byte) *keyring {
	k := &keyring{keys: keys, pools: make([]*sync.Pool, len(keys))}
	for i, key := range keys {
		k.pools[i] = &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}
	}
	return k
}

// sum computes the MAC of prefix || body || suffix under key i into dst.
func (k *keyring) sum(i int, dst *[sha256.Size]byte, prefix, body, suffix []byte) {
	mac := k.pools[i].Get().(hash.Hash)
	mac.Write(prefix)
	mac.Write(body)
	mac.Write(suffix)
	mac.Sum(dst[:0])
	mac.Reset()
	k.pools[i].Put(mac)
}

// macOf is the one-off MAC of prefix || body || suffix under key, for the
// signing helpers.
func macOf(key, prefix, body, suffix []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(prefix)
	mac.Write(body)
	mac.Write(suffix)
	return mac.Sum(nil)
}

// match reports the first candidate equal to the MAC of prefix || body ||
// suffix under any key. Every key is tried and every comparison is
// constant-time, so timing does not reveal which key matched.
func (k *keyring) match(candidates [][]byte, prefix, body, suffix []byte) ([]byte, bool) {
	var (
		expected [sha256.Size]byte
		found    []byte
	)
	for i := range k.keys {
		k.sum(i, &expected, prefix, body, suffix)
		for _, got := range candidates {
			if hmac.Equal(expected[:], got) && found == nil {
				found = got
			}
		}
	}
	return found, found != nil
}

// signatureID is the delivery id of a scheme without one: the hex SHA-256
// of the verified signature. It is unique per signed content (timestamp
// and body) and, unlike the signature, cannot be presented as one.
func signatureID(sig []byte) string {
	sum := sha256.Sum256(sig)
	var id [4 + 2*sha256.Size]byte
	copy(id[:], "sig:")
	hex.Encode(id[4:], sum[:])
	return string(id[:])
}
