package webhooksig

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// StripeSignatureHeader is the header Stripe signs with.
const StripeSignatureHeader = "Stripe-Signature"

// StripeConfig configures a Stripe verifier.
type StripeConfig struct {
	// Name is the verifier's name. Default "stripe".
	Name string
	// Secrets are the active endpoint signing secrets ("whsec_…", used as
	// given, prefix included, as Stripe does). Several allow a roll with an
	// overlap. Required.
	Secrets []string
	// Tolerance is how far the signed timestamp may lie from now, in
	// either direction. Default 300 s (Stripe's default).
	Tolerance time.Duration
	// Now returns the current time. Default: the system's wall clock
	// (time.Now), read at most every 100 ms while the verifier is used.
	Now func() time.Time
}

// Stripe verifies Stripe's Stripe-Signature header: "t=<unix>" and one or
// more "v1=<hex>", each the HMAC-SHA256 of "<t>.<body>".
type Stripe struct {
	name string
	keys *keyring
	timing
}

// NewStripe returns a Stripe verifier, or an error wrapping ErrInvalidConfig.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	keys, err := stringSecrets("stripe", cfg.Secrets)
	if err != nil {
		return nil, err
	}
	t, err := newTiming(cfg.Now, cfg.Tolerance, 300*time.Second)
	if err != nil {
		return nil, err
	}
	return &Stripe{name: cmp.Or(cfg.Name, "stripe"), keys: newKeyring(keys), timing: t}, nil
}

// Name implements Verifier.
func (s *Stripe) Name() string { return s.name }

// Verify implements Verifier. The delivery id is the event's "id".
func (s *Stripe) Verify(m *Message) (Delivery, error) {
	var h tvHeader
	d, match, err := verifyTV(s.name, StripeSignatureHeader, keyStripeSignature, s.keys, s.timing, m, &h)
	if err != nil {
		return Delivery{}, err
	}
	if d.ID = topLevelID(m.Body); d.ID == "" {
		d.ID = signatureID(h.signatures.at(match))
	}
	return d, nil
}

// verifyTV is the check Stripe and Calendly share: HMAC-SHA256 over
// "<t>.<body>", hex, in a "t=…,v1=…" header (canonical form key) parsed
// into h. It returns the
// delivery without its id, and the index of the matching signature in
// h.signatures.
func verifyTV(name, header, key string, keys *keyring, tm timing, m *Message, h *tvHeader) (Delivery, int, error) {
	value, err := singleHeaderKey(name, m.Header, header, key)
	if err != nil {
		return Delivery{}, 0, err
	}
	if !parseTVHeader(value, h) {
		return Delivery{}, 0, fail(name, header, ErrMalformedHeader)
	}
	if h.signatures.n == 0 {
		if h.otherSchemes > 0 {
			return Delivery{}, 0, fail(name, header, ErrUnknownKey)
		}
		return Delivery{}, 0, fail(name, header, ErrMalformedHeader)
	}
	ts := time.Unix(h.timestamp, 0)
	if err := checkTimestamp(name, header, tm.now(), ts, tm.tolerance); err != nil {
		return Delivery{}, 0, err
	}
	match, ok := keys.match(&h.signatures, []string{h.rawTime, "."}, m.Body, "")
	if !ok {
		return Delivery{}, 0, fail(name, header, ErrBadSignature)
	}
	return Delivery{Verifier: name, Timestamp: ts}, match, nil
}

// SignStripe returns a Stripe-Signature value for body at t with one v1
// signature per secret, as Stripe sends while a secret is rolled.
func SignStripe(t time.Time, body []byte, secrets ...string) string {
	return signTV(t, body, secrets)
}

func signTV(t time.Time, body []byte, secrets []string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	out := "t=" + ts
	for _, secret := range secrets {
		out += ",v1=" + hex.EncodeToString(macOf([]byte(secret), tvPrefix(ts), body, nil))
	}
	return out
}

// topLevelID returns the string member "id" of the JSON object body, or ""
// when body is not an object or has no such string.
func topLevelID(body []byte) string {
	if id, ok := leadingID(body); ok {
		return id
	}
	return decodeID(body)
}

// decodeID reads body's top-level members with a JSON decoder until "id".
func decodeID(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return ""
		}
		if key == "id" {
			var id string
			if dec.Decode(&id) != nil {
				return ""
			}
			return id
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}

// leadingID is topLevelID's fast path for the shape Stripe sends, the
// object's first member being "id" with a plain string value:
// {"id": "evt_…", …}. ok is false for anything else (an escape or a
// control character in the value included), which the full decoder then
// reads. It is a plain byte scan: it runs on every Stripe delivery.
func leadingID(body []byte) (id string, ok bool) {
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false
	}
	i = skipJSONSpace(body, i+1)
	if len(body)-i < 4 || string(body[i:i+4]) != `"id"` {
		return "", false
	}
	i = skipJSONSpace(body, i+4)
	if i >= len(body) || body[i] != ':' {
		return "", false
	}
	i = skipJSONSpace(body, i+1)
	if i >= len(body) || body[i] != '"' {
		return "", false
	}
	start := i + 1
	for j := start; j < len(body); j++ {
		switch c := body[j]; {
		case c == '"':
			return string(body[start:j]), true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// tvPrefix is what precedes the body in the signed string: "<t>.".
func tvPrefix(rawTime string) []byte {
	return append([]byte(rawTime), '.')
}
