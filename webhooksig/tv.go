package webhooksig

import (
	"strings"
	"unicode/utf8"
)

// maxSignatures bounds the signatures one header may carry: senders send
// one per active secret, and the bound keeps the work per request small.
const maxSignatures = 16

// tvHeader is a parsed "t=<unix>,v1=<hex>,…" header, the shape Stripe and
// Calendly share.
type tvHeader struct {
	timestamp  int64
	rawTime    string
	signatures sigList
	// otherSchemes counts signatures of versions other than v1.
	otherSchemes int
}

// parseTVHeader parses a "t=…,v1=…" header into h. Exactly one t is
// required; v1 may repeat (Stripe sends one per active secret while a
// secret is rolled); other keys are counted and ignored. An empty element,
// an element without "=", a duplicated t, a non-numeric t, a v1 that is
// not 32 bytes of hex or more than maxSignatures v1 values is malformed.
// It allocates nothing for up to two signatures.
func parseTVHeader(value string, h *tvHeader) bool {
	seenTime := false
	for {
		// Byte scans instead of strings.Cut and an unconditional
		// strings.TrimSpace: the header is parsed on every delivery.
		part, rest, more := value, "", false
		if i := strings.IndexByte(value, ','); i >= 0 {
			part, rest, more = value[:i], value[i+1:], true
		}
		part = trimSpace(part)
		eq := strings.IndexByte(part, '=')
		if eq <= 0 { // no "=", or an empty key
			return false
		}
		key, val := part[:eq], part[eq+1:]
		switch {
		case key == "t":
			ts, ok := parseUnsigned(val)
			if seenTime || !ok {
				return false
			}
			seenTime, h.timestamp, h.rawTime = true, ts, val
		case key == "v1":
			slot := h.signatures.next()
			if slot == nil || !decodeHex32(slot, val) {
				return false
			}
		default:
			h.otherSchemes++
		}
		if !more {
			break
		}
		value = rest
	}
	return seenTime
}

// trimSpace is strings.TrimSpace, returning s itself without a call when
// neither end is a space or a non-ASCII byte, the usual case.
func trimSpace(s string) string {
	if s == "" {
		return s
	}
	if first, last := s[0], s[len(s)-1]; first < utf8.RuneSelf && last < utf8.RuneSelf && !asciiSpace[first] && !asciiSpace[last] {
		return s
	}
	return strings.TrimSpace(s)
}

// asciiSpace marks the ASCII bytes strings.TrimSpace removes.
var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}
