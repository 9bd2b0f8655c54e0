package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"sync"
	"unsafe"
)

// keyring holds a verifier's active HMAC-SHA256 keys. Each key keeps a
// pool of keyed hash states: after its first use an HMAC state resets to
// the keyed state without rehashing the key, so a verification costs the
// message's blocks and no allocation for the hash.
type keyring struct {
	keys  [][]byte
	pools []sync.Pool
}

// macState is one pooled keyed HMAC state with the scratch space a
// verification needs, so that neither the signed prefix nor the sum has
// to be allocated per request: both would escape through the hash.Hash
// interface.
type macState struct {
	mac  hash.Hash
	head []byte
	out  [sha256.Size]byte
}

// maxPooledHead bounds the prefix buffer a pooled state keeps; a longer
// one (a HubSpot URL, say) is used once and dropped.
const maxPooledHead = 1 << 10

func newKeyring(keys [][]byte) *keyring {
	k := &keyring{keys: keys, pools: make([]sync.Pool, len(keys))}
	for i, key := range keys {
		k.pools[i].New = func() any {
			return &macState{mac: hmac.New(sha256.New, key), head: make([]byte, 0, 64)}
		}
	}
	return k
}

// sum computes the MAC of concat(head) || body || tail under key i into
// dst. The head's parts are joined in the state's buffer and written at
// once, as a caller with the prefix already joined would.
func (k *keyring) sum(i int, dst *[sha256.Size]byte, head []string, body []byte, tail string) {
	s := k.pools[i].Get().(*macState)
	if len(head) > 0 {
		buf := s.head[:0]
		for _, part := range head {
			buf = append(buf, part...)
		}
		s.mac.Write(buf)
		if cap(buf) <= maxPooledHead {
			s.head = buf[:0]
		}
	}
	s.mac.Write(body)
	if tail != "" {
		s.mac.Write(readOnlyBytes(tail))
	}
	s.mac.Sum(s.out[:0])
	*dst = s.out
	s.mac.Reset()
	k.pools[i].Put(s)
}

// readOnlyBytes returns the bytes of s without copying them. Only for
// code that reads them and does not keep them, such as io.Writer.Write,
// whose contract forbids modifying or retaining p.
func readOnlyBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
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

// match reports the index of the first candidate equal to the MAC of
// concat(head) || body || tail under any key. Every key is tried and every
// comparison is constant-time, so timing does not reveal which key
// matched.
func (k *keyring) match(candidates *sigList, head []string, body []byte, tail string) (int, bool) {
	var expected [sha256.Size]byte
	found := -1
	for i := range k.keys {
		k.sum(i, &expected, head, body, tail)
		for j := range candidates.n {
			if hmac.Equal(expected[:], candidates.at(j)) && found < 0 {
				found = j
			}
		}
	}
	return found, found >= 0
}

// sigList holds the decoded signatures of one header: the first two (one
// per active secret during a roll, the usual most) without a heap
// allocation, more up to maxSignatures in a slice.
type sigList struct {
	n      int
	inline [2][sha256.Size]byte
	more   [][sha256.Size]byte
}

// next returns the slot for one more signature, or nil when the list
// already holds maxSignatures.
func (l *sigList) next() *[sha256.Size]byte {
	switch {
	case l.n == maxSignatures:
		return nil
	case l.n < len(l.inline):
		l.n++
		return &l.inline[l.n-1]
	default:
		l.more = append(l.more, [sha256.Size]byte{})
		l.n++
		return &l.more[len(l.more)-1]
	}
}

// at returns signature i.
func (l *sigList) at(i int) []byte {
	if i < len(l.inline) {
		return l.inline[i][:]
	}
	return l.more[i-len(l.inline)][:]
}

// one returns a list holding sig.
func one(sig *[sha256.Size]byte) *sigList {
	l := &sigList{n: 1}
	l.inline[0] = *sig
	return l
}

// decodeHex32 decodes s, which must be exactly 64 hex digits (either case,
// as encoding/hex accepts), into dst without allocating. It works on eight
// digits at a time in a 64-bit word, one byte lane per digit: the
// signature is decoded on every Stripe and Calendly delivery.
func decodeHex32(dst *[sha256.Size]byte, s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	b := readOnlyBytes(s)
	var bad uint64
	for i := range sha256.Size / 4 {
		v, invalid := decodeHex8(binary.LittleEndian.Uint64(b[8*i:]))
		binary.LittleEndian.PutUint32(dst[4*i:], v)
		bad |= invalid
	}
	return bad == 0
}

// decodeHex8 decodes the eight hex digits in x's bytes (the first in the
// lowest) into four bytes; invalid is non-zero when a byte of x is not a
// hex digit.
func decodeHex8(x uint64) (v uint32, invalid uint64) {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// For ASCII lanes (high bit clear) adding 0x80-k sets a lane's high
	// bit exactly when the lane is at least k, without a carry into the
	// next lane; a non-ASCII lane makes the word invalid whatever its
	// carries do to the others.
	lower := x | 0x2020202020202020 // 'A'-'F' to 'a'-'f'; only those and 'a'-'f' land there
	digit := (x + (0x80-'0')*ones) &^ (x + (0x80-('9'+1))*ones)
	letter := (lower + (0x80-'a')*ones) &^ (lower + (0x80-('f'+1))*ones)
	invalid = (x | ^(digit | letter)) & highs
	// A digit's value is its low nibble; a letter's is its low nibble + 9.
	n := x&0x0f0f0f0f0f0f0f0f + (letter>>7&ones)*9
	// Pair the nibbles into the even lanes, then gather those four.
	n = (n>>8 | n<<4) & 0x00ff00ff00ff00ff
	n = (n | n>>8) & 0x0000ffff0000ffff
	return uint32(n | n>>16), invalid
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
