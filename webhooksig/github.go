package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// GitHub header names.
const (
	GitHubSignatureHeader = "X-Hub-Signature-256"
	GitHubDeliveryHeader  = "X-GitHub-Delivery"
)

// GitHubConfig configures a GitHub verifier.
type GitHubConfig struct {
	// Name is the verifier's name. Default "github".
	Name string
	// Secrets are the active webhook secrets; a signature under any of them
	// is accepted, so a secret can be rotated with an overlap. Required.
	Secrets []string
}

// GitHub verifies GitHub's X-Hub-Signature-256: "sha256=" followed by the
// hex HMAC-SHA256 of the body. GitHub signs no timestamp, so replay
// protection rests on the replay guard. GitHub does not sign its delivery
// id (X-GitHub-Delivery) either, so the guard keys a delivery by the digest
// of its verified signature, that is by its body: a captured delivery resent
// under a new or no X-GitHub-Delivery is still the same delivery. Two
// deliveries with byte-identical bodies count as one; GitHub's payloads
// differ per event. The header's value is Delivery.SenderID.
type GitHub struct {
	name string
	keys *keyring
}

// NewGitHub returns a GitHub verifier, or an error wrapping ErrInvalidConfig.
func NewGitHub(cfg GitHubConfig) (*GitHub, error) {
	keys, err := stringSecrets("github", cfg.Secrets)
	if err != nil {
		return nil, err
	}
	return &GitHub{name: cmp.Or(cfg.Name, "github"), keys: newKeyring(keys)}, nil
}

// Name implements Verifier.
func (g *GitHub) Name() string { return g.name }

// Verify implements Verifier.
func (g *GitHub) Verify(m *Message) (Delivery, error) {
	value, err := singleHeader(g.name, m.Header, GitHubSignatureHeader)
	if err != nil {
		return Delivery{}, err
	}
	hexSig, ok := strings.CutPrefix(value, "sha256=")
	if !ok {
		return Delivery{}, fail(g.name, GitHubSignatureHeader, ErrMalformedHeader)
	}
	var sig [sha256.Size]byte
	if !decodeHex32(&sig, hexSig) {
		return Delivery{}, fail(g.name, GitHubSignatureHeader, ErrMalformedHeader)
	}
	if _, ok := g.keys.match(one(&sig), nil, m.Body, ""); !ok {
		return Delivery{}, fail(g.name, GitHubSignatureHeader, ErrBadSignature)
	}
	// X-GitHub-Delivery is not signed: whoever captured a delivery could
	// resend it under any id. The replay key is the signature's digest,
	// which covers the body; the header is passed on for logs only.
	return Delivery{Verifier: g.name, ID: signatureID(sig[:]), SenderID: firstValue(m.Header, GitHubDeliveryHeader)}, nil
}

// SignGitHub returns the X-Hub-Signature-256 value for body under secret.
func SignGitHub(secret string, body []byte) string {
	return "sha256=" + hex.EncodeToString(macOf([]byte(secret), nil, body, nil))
}

// decodeHex decodes s, which must be exactly size bytes in hex.
func decodeHex(s string, size int) ([]byte, error) {
	if len(s) != 2*size {
		return nil, hex.ErrLength
	}
	return hex.DecodeString(s)
}

// firstValue is http.Header.Get for one of the package's header names,
// without canonicalizing the name again.
func firstValue(h http.Header, name string) string {
	if values := h[canonicalHeaders[name]]; len(values) > 0 {
		return values[0]
	}
	return ""
}
