package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Slack header names.
const (
	SlackSignatureHeader = "X-Slack-Signature"
	SlackTimestampHeader = "X-Slack-Request-Timestamp"
)

// SlackConfig configures a Slack verifier.
type SlackConfig struct {
	// Name is the verifier's name. Default "slack".
	Name string
	// Secrets are the app's active signing secrets. Required.
	Secrets []string
	// Tolerance is how far X-Slack-Request-Timestamp may lie from now, in
	// either direction. Default 5 minutes (Slack's advice).
	Tolerance time.Duration
	// Now returns the current time. Default: the system's wall clock
	// (time.Now), read at most every 100 ms while the verifier is used.
	Now func() time.Time
}

// Slack verifies Slack's request signing: X-Slack-Signature is "v0=" and
// the hex HMAC-SHA256 of "v0:<X-Slack-Request-Timestamp>:<body>".
type Slack struct {
	name string
	keys *keyring
	timing
}

// NewSlack returns a Slack verifier, or an error wrapping ErrInvalidConfig.
func NewSlack(cfg SlackConfig) (*Slack, error) {
	keys, err := stringSecrets("slack", cfg.Secrets)
	if err != nil {
		return nil, err
	}
	t, err := newTiming(cfg.Now, cfg.Tolerance, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	return &Slack{name: cmp.Or(cfg.Name, "slack"), keys: newKeyring(keys), timing: t}, nil
}

// Name implements Verifier.
func (s *Slack) Name() string { return s.name }

// Verify implements Verifier. Slack sends no delivery id; the id is the
// digest of the verified signature, unique per timestamp and body.
func (s *Slack) Verify(m *Message) (Delivery, error) {
	rawTime, err := singleHeader(s.name, m.Header, SlackTimestampHeader)
	if err != nil {
		return Delivery{}, err
	}
	value, err := singleHeader(s.name, m.Header, SlackSignatureHeader)
	if err != nil {
		return Delivery{}, err
	}
	unix, ok := parseUnsigned(rawTime)
	if !ok {
		return Delivery{}, fail(s.name, SlackTimestampHeader, ErrMalformedHeader)
	}
	version, hexSig, ok := strings.Cut(value, "=")
	if !ok {
		return Delivery{}, fail(s.name, SlackSignatureHeader, ErrMalformedHeader)
	}
	if version != "v0" {
		return Delivery{}, fail(s.name, SlackSignatureHeader, ErrUnknownKey)
	}
	var sig [sha256.Size]byte
	if !decodeHex32(&sig, hexSig) {
		return Delivery{}, fail(s.name, SlackSignatureHeader, ErrMalformedHeader)
	}
	ts := time.Unix(unix, 0)
	if err := checkTimestamp(s.name, SlackTimestampHeader, s.now(), ts, s.tolerance); err != nil {
		return Delivery{}, err
	}
	if _, ok := s.keys.match(one(&sig), []string{"v0:", rawTime, ":"}, m.Body, ""); !ok {
		return Delivery{}, fail(s.name, SlackSignatureHeader, ErrBadSignature)
	}
	return Delivery{Verifier: s.name, ID: signatureID(sig[:]), Timestamp: ts}, nil
}

// slackPrefix is what precedes the body in the signed string: "v0:<ts>:".
func slackPrefix(rawTime string) []byte {
	prefix := make([]byte, 0, len(rawTime)+4)
	prefix = append(prefix, "v0:"...)
	prefix = append(prefix, rawTime...)
	return append(prefix, ':')
}

// SignSlack returns the X-Slack-Request-Timestamp and X-Slack-Signature
// values for body at t under secret.
func SignSlack(secret string, t time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	return timestamp, "v0=" + hex.EncodeToString(macOf([]byte(secret), slackPrefix(timestamp), body, nil))
}
