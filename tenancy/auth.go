package tenancy

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/dealix/platform/internal/errs"
)

// AuthConfig configures an Authenticator. At least one of JWT and APIKeys
// is required.
type AuthConfig struct {
	// JWT verifies bearer JWTs. Optional.
	JWT *JWTVerifier
	// APIKeys verifies API keys, sent as "Authorization: Bearer <key>" or
	// in the X-API-Key header. Optional.
	APIKeys *APIKeys
	// MaxHeaderBytes caps the Authorization and X-API-Key headers.
	// Default: DefaultMaxHeaderBytes (8 KiB).
	MaxHeaderBytes int
	// Realm is the realm of the WWW-Authenticate challenge. Default:
	// DefaultRealm ("api").
	Realm string
	// Logger receives refusals at debug level and database failures at
	// error level. Default: slog.Default().
	Logger *slog.Logger
}

// Authenticator accepts either a JWT or an API key on the same route. A
// bearer credential that starts with the API-key brand ("dlx_" by default)
// is an API key; any other is a JWT. It is safe for concurrent use.
type Authenticator struct {
	cfg   AuthConfig
	brand string
}

// NewAuthenticator validates cfg and returns an Authenticator.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.JWT == nil && cfg.APIKeys == nil {
		return nil, errs.Config("tenancy", "AuthConfig needs JWT or APIKeys")
	}
	cfg.Realm = cmp.Or(cfg.Realm, DefaultRealm)
	if strings.ContainsAny(cfg.Realm, "\"\\\r\n") {
		return nil, errs.Config("tenancy", "AuthConfig.Realm must not contain quotes, backslashes or line breaks")
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Authenticator{cfg: cfg}
	if cfg.APIKeys != nil {
		a.brand = cfg.APIKeys.cfg.Brand + "_"
	}
	return a, nil
}

// Authenticate returns the principal of r. Sending both an Authorization
// and an X-API-Key header is refused with ErrMalformedCredentials: the
// request is not guessed at.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	credential, err := a.credential(r)
	if err != nil {
		return Principal{}, err
	}
	if a.cfg.APIKeys != nil && strings.HasPrefix(credential, a.brand) {
		return a.cfg.APIKeys.Authenticate(r.Context(), credential)
	}
	if a.cfg.JWT == nil {
		return Principal{}, ErrInvalidAPIKey
	}
	return a.cfg.JWT.Verify(r.Context(), credential)
}

// credential returns the one credential of r: the Bearer token, or the
// X-API-Key value when API keys are enabled.
func (a *Authenticator) credential(r *http.Request) (string, error) {
	if a.cfg.APIKeys == nil || len(r.Header[apiKeyHeaderKey]) == 0 {
		return bearerToken(r, a.cfg.MaxHeaderBytes)
	}
	if len(r.Header["Authorization"]) > 0 {
		return "", fmt.Errorf("%w: both Authorization and %s", ErrMalformedCredentials, APIKeyHeader)
	}
	value, err := singleHeader(r, apiKeyHeaderKey)
	if err != nil {
		return "", err
	}
	return ParseAPIKeyHeader(value, a.cfg.MaxHeaderBytes)
}

// apiKeyHeaderKey is APIKeyHeader in canonical form ("X-Api-Key"), so a
// request's headers are indexed without canonicalizing (and allocating)
// the name on every request.
var apiKeyHeaderKey = http.CanonicalHeaderKey(APIKeyHeader)

// ParseAPIKeyHeader checks an X-API-Key header value: at most maxBytes
// (DefaultMaxHeaderBytes when maxBytes <= 0), surrounding spaces trimmed,
// and in the form of a key issued by APIKeys. It returns the key, or
// ErrNoCredentials for an empty value and ErrMalformedCredentials or
// ErrInvalidAPIKey otherwise.
func ParseAPIKeyHeader(value string, maxBytes int) (string, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	if len(value) > maxBytes {
		return "", fmt.Errorf("%w: %s is longer than %d bytes", ErrMalformedCredentials, APIKeyHeader, maxBytes)
	}
	key := strings.Trim(value, " \t")
	if key == "" {
		return "", ErrNoCredentials
	}
	if _, _, err := ParseAPIKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// Handler is middleware that admits only authenticated requests and puts
// the Principal and its tenant in the request's context. Missing or bad
// credentials get a 401 problem+json with a WWW-Authenticate: Bearer
// challenge; a credential without a usable tenant gets a 403; a database
// failure while checking an API key gets a 503.
func (a *Authenticator) Handler(next http.Handler) http.Handler {
	return authHandler(a.Authenticate, a.cfg.Realm, a.cfg.Logger, next)
}
