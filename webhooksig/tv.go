package webhooksig

import "strings"

// maxSignatures bounds the signatures one header may carry: senders send
// one per active secret, and the bound keeps the work per request small.
const maxSignatures = 16

// tvHeader is a parsed "t=<unix>,v1=<hex>,…" header, the shape Stripe and
// Calendly share.
type tvHeader struct {
	timestamp  int64
	rawTime    string
	signatures [][]byte
	// otherSchemes counts signatures of versions other than v1.
	otherSchemes int
}

// parseTVHeader parses a "t=…,v1=…" header. Exactly one t is required; v1
// may repeat (Stripe sends one per active secret while a secret is rolled);
// other keys are counted and ignored. An empty element, an element without
// "=", a duplicated t, a non-numeric t, a v1 that is not 32 bytes of hex
// or more than maxSignatures v1 values is malformed.
func parseTVHeader(value string) (tvHeader, bool) {
	var h tvHeader
	seenTime := false
	for part := range strings.SplitSeq(value, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || key == "" {
			return tvHeader{}, false
		}
		switch key {
		case "t":
			ts, ok := parseUnsigned(val)
			if seenTime || !ok {
				return tvHeader{}, false
			}
			seenTime, h.timestamp, h.rawTime = true, ts, val
		case "v1":
			sig, err := decodeHex(val, 32)
			if err != nil {
				return tvHeader{}, false
			}
			if len(h.signatures) == maxSignatures {
				return tvHeader{}, false
			}
			h.signatures = append(h.signatures, sig)
		default:
			h.otherSchemes++
		}
	}
	return h, seenTime
}
