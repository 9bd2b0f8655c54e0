package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dealix/platform/internal/errs"
)

// Standard Webhooks header names.
const (
	StandardIDHeader        = "webhook-id"
	StandardTimestampHeader = "webhook-timestamp"
	StandardSignatureHeader = "webhook-signature"
)

// StandardConfig configures a Standard Webhooks verifier.
type StandardConfig struct {
	// Name is the verifier's name. Default "standard-webhooks".
	Name string
	// Secrets are the active secrets, "whsec_" followed by the base64 key
	// (the prefix is optional). Several allow rotation with an overlap.
	// Required.
	Secrets []string
	// Tolerance is how far webhook-timestamp may lie from now, in either
	// direction. Default 5 minutes (the specification's).
	Tolerance time.Duration
	// Now returns the current time. Default: the system's wall clock
	// (time.Now), read at most every 100 ms while the verifier is used.
	Now func() time.Time
}

// Standard verifies the Standard Webhooks scheme (also Svix's): the
// space-separated "v1,<base64>" list in webhook-signature, each the
// HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>".
type Standard struct {
	name string
	keys *keyring
	timing
}

// NewStandard returns a Standard Webhooks verifier, or an error wrapping
// ErrInvalidConfig when a secret is not base64.
func NewStandard(cfg StandardConfig) (*Standard, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errs.Config("webhooksig", "standard-webhooks: at least one secret is required")
	}
	keys := make([][]byte, len(cfg.Secrets))
	for i, s := range cfg.Secrets {
		key, err := decodeStandardSecret(s)
		if err != nil {
			return nil, err
		}
		keys[i] = key
	}
	t, err := newTiming(cfg.Now, cfg.Tolerance, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	return &Standard{name: cmp.Or(cfg.Name, "standard-webhooks"), keys: newKeyring(keys), timing: t}, nil
}

func decodeStandardSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		// The decoding error quotes the input's offending byte; leave it out.
		return nil, errs.Config("webhooksig", "standard-webhooks: secret is not whsec_ followed by base64")
	}
	return key, nil
}

// Name implements Verifier.
func (s *Standard) Name() string { return s.name }

// Verify implements Verifier. The delivery id is webhook-id.
func (s *Standard) Verify(m *Message) (Delivery, error) {
	id, err := singleHeaderKey(s.name, m.Header, StandardIDHeader, keyStandardID)
	if err != nil {
		return Delivery{}, err
	}
	rawTime, err := singleHeaderKey(s.name, m.Header, StandardTimestampHeader, keyStandardTimestamp)
	if err != nil {
		return Delivery{}, err
	}
	list, err := singleHeaderKey(s.name, m.Header, StandardSignatureHeader, keyStandardSignature)
	if err != nil {
		return Delivery{}, err
	}
	unix, ok := parseUnsigned(rawTime)
	if !ok {
		return Delivery{}, fail(s.name, StandardTimestampHeader, ErrMalformedHeader)
	}
	var sigs sigList
	others, ok := parseStandardSignatures(list, &sigs)
	if !ok {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrMalformedHeader)
	}
	if sigs.n == 0 && others > 0 {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrUnknownKey)
	}
	ts := time.Unix(unix, 0)
	if err := checkTimestamp(s.name, StandardTimestampHeader, s.now(), ts, s.tolerance); err != nil {
		return Delivery{}, err
	}
	if _, ok := s.keys.match(&sigs, []string{id, ".", rawTime, "."}, m.Body, ""); !ok {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrBadSignature)
	}
	return Delivery{Verifier: s.name, ID: id, Timestamp: ts}, nil
}

// parseStandardSignatures parses "v1,<b64> v1,<b64> v1a,<b64>" into sigs:
// elements are separated by spaces and each is "<version>,<signature>".
// v1 signatures must be 32 bytes of standard base64; other versions are
// counted and ignored. A list without elements, an element without a comma
// a bad v1 signature or more than maxSignatures v1 signatures is malformed.
// It allocates nothing for up to two signatures.
func parseStandardSignatures(list string, sigs *sigList) (others int, ok bool) {
	for {
		// IndexByte rather than strings.Cut, whose substring search costs
		// more than the scan itself on every delivery.
		elem, rest, more := list, "", false
		if i := strings.IndexByte(list, ' '); i >= 0 {
			elem, rest, more = list[:i], list[i+1:], true
		}
		if elem != "" { // a doubled or trailing space is skipped, as the reference library allows
			comma := strings.IndexByte(elem, ',')
			if comma <= 0 { // no comma, or an empty version
				return 0, false
			}
			version, b64 := elem[:comma], elem[comma+1:]
			if version != "v1" {
				others++
			} else if !decodeBase64Sig(sigs, b64) {
				return 0, false
			}
		}
		if !more {
			break
		}
		list = rest
	}
	return others, sigs.n > 0 || others > 0
}

// decodeBase64Sig appends the standard-base64 signature b64, which must
// decode to exactly 32 bytes, to sigs.
func decodeBase64Sig(sigs *sigList, b64 string) bool {
	if len(b64) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return false
	}
	slot := sigs.next()
	if slot == nil {
		return false
	}
	var buf [sha256.Size + 1]byte // DecodedLen(44) is 33
	n, err := base64.StdEncoding.Decode(buf[:], readOnlyBytes(b64))
	if err != nil || n != sha256.Size {
		return false
	}
	copy(slot[:], buf[:n])
	return true
}

// standardPrefix is what precedes the body in the signed string:
// "<webhook-id>.<webhook-timestamp>.".
func standardPrefix(id, rawTime string) []byte {
	prefix := make([]byte, 0, len(id)+len(rawTime)+2)
	prefix = append(prefix, id...)
	prefix = append(prefix, '.')
	prefix = append(prefix, rawTime...)
	return append(prefix, '.')
}

// SignStandard returns a webhook-signature value for (id, t, body) with one
// "v1,<base64>" element per secret, or an error wrapping ErrInvalidConfig
// when a secret is not base64.
func SignStandard(id string, t time.Time, body []byte, secrets ...string) (string, error) {
	ts := strconv.FormatInt(t.Unix(), 10)
	parts := make([]string, 0, len(secrets))
	for _, secret := range secrets {
		key, err := decodeStandardSecret(secret)
		if err != nil {
			return "", err
		}
		parts = append(parts, "v1,"+base64.StdEncoding.EncodeToString(macOf(key, standardPrefix(id, ts), body, nil)))
	}
	return strings.Join(parts, " "), nil
}

// parseUnsigned parses a decimal integer of digits only (no sign, no
// spaces), as the timestamp headers are written; a value above
// math.MaxInt64 is refused.
func parseUnsigned(s string) (int64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	if len(s) > 19 { // only leading zeros can make a valid int64 this long
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var n uint64 // 19 digits fit: at most 9999999999999999999 < 1<<64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + uint64(c)
	}
	return int64(n), n <= math.MaxInt64
}
