package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
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
	// Now returns the current time. Default time.Now.
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
	id, err := singleHeader(s.name, m.Header, StandardIDHeader)
	if err != nil {
		return Delivery{}, err
	}
	rawTime, err := singleHeader(s.name, m.Header, StandardTimestampHeader)
	if err != nil {
		return Delivery{}, err
	}
	list, err := singleHeader(s.name, m.Header, StandardSignatureHeader)
	if err != nil {
		return Delivery{}, err
	}
	unix, ok := parseUnsigned(rawTime)
	if !ok {
		return Delivery{}, fail(s.name, StandardTimestampHeader, ErrMalformedHeader)
	}
	sigs, others, ok := parseStandardSignatures(list)
	if !ok {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrMalformedHeader)
	}
	if len(sigs) == 0 && others > 0 {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrUnknownKey)
	}
	ts := time.Unix(unix, 0)
	if err := checkTimestamp(s.name, StandardTimestampHeader, s.now(), ts, s.tolerance); err != nil {
		return Delivery{}, err
	}
	if _, ok := s.keys.match(sigs, standardPrefix(id, rawTime), m.Body, nil); !ok {
		return Delivery{}, fail(s.name, StandardSignatureHeader, ErrBadSignature)
	}
	return Delivery{Verifier: s.name, ID: id, Timestamp: ts}, nil
}

// parseStandardSignatures parses "v1,<b64> v1,<b64> v1a,<b64>": elements
// are separated by spaces and each is "<version>,<signature>". v1
// signatures must be 32 bytes of standard base64; other versions are
// counted and ignored. A list without elements, an element without a comma
// a bad v1 signature or more than maxSignatures v1 signatures is malformed.
func parseStandardSignatures(list string) (sigs [][]byte, others int, ok bool) {
	for elem := range strings.SplitSeq(list, " ") {
		if elem == "" {
			continue // a doubled or trailing space, as the reference library allows
		}
		version, b64, found := strings.Cut(elem, ",")
		if !found || version == "" {
			return nil, 0, false
		}
		if version != "v1" {
			others++
			continue
		}
		if len(b64) != base64.StdEncoding.EncodedLen(sha256.Size) {
			return nil, 0, false
		}
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) != sha256.Size {
			return nil, 0, false
		}
		if len(sigs) == maxSignatures {
			return nil, 0, false
		}
		sigs = append(sigs, sig)
	}
	return sigs, others, len(sigs) > 0 || others > 0
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
// spaces), as the timestamp headers are written.
func parseUnsigned(s string) (int64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}
