package tenancy

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
)

// Defaults of JWTConfig.
const (
	// DefaultTenantClaim is the claim that carries the tenant id.
	DefaultTenantClaim = "tenant_id"
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// MaxLeeway is the largest leeway NewJWTVerifier accepts.
	MaxLeeway = 5 * time.Minute
	// DefaultJWKSRefresh is how often a JWKS URL is fetched again.
	DefaultJWKSRefresh = time.Hour
	// DefaultJWKSMinRefreshInterval is the least time between two fetches
	// of a JWKS URL caused by tokens naming a kid the verifier does not
	// hold.
	DefaultJWKSMinRefreshInterval = time.Minute
	// DefaultJWKSTimeout bounds one fetch of a JWKS URL.
	DefaultJWKSTimeout = 10 * time.Second
	// DefaultRealm is the realm of the WWW-Authenticate challenge.
	DefaultRealm = "api"
	// MinHMACKeyBytes is the shortest HMAC secret a Key may hold.
	MinHMACKeyBytes = 32
)

// ErrInvalidConfig is wrapped by every configuration error of the
// constructors in this package; it is the same value in every package.
var ErrInvalidConfig = errs.ErrInvalidConfig

// Key is one key that verifies JWT signatures.
type Key struct {
	// ID is matched against the token's "kid" header. Several keys with
	// different IDs may be active at once, which is how keys rotate. Keys
	// without an ID are tried, among those of the token's algorithm, only
	// for tokens without a kid.
	ID string
	// Algorithm is the one JWS algorithm this key verifies, for example
	// "HS256", "RS256", "PS256", "ES256" or "EdDSA". A token whose "alg"
	// differs is never verified with this key, which rules out algorithm
	// confusion (an HS256 token "signed" with an RSA public key).
	Algorithm string
	// Key is the verification key: a []byte secret of at least
	// MinHMACKeyBytes for HS*, *rsa.PublicKey for RS*/PS*,
	// *ecdsa.PublicKey on the matching curve for ES*, ed25519.PublicKey for
	// EdDSA.
	Key any
}

// JWTConfig configures a JWTVerifier. Issuer, Audience and at least one of
// Keys and JWKSURL are required.
type JWTConfig struct {
	// Keys are static verification keys.
	Keys []Key
	// JWKSURL, when set, is a JSON Web Key Set (keys parsed with
	// github.com/MicahParks/keyfunc/v3), fetched by NewJWTVerifier and
	// refreshed in the background every JWKSRefresh until Close, and when
	// a token names a kid the verifier does not hold (at most once every
	// JWKSMinRefreshInterval). Keys with the token's kid are looked up in
	// Keys first; a token verified through the JWKS must name its key by
	// kid.
	JWKSURL string
	// JWKSClient fetches JWKSURL. Default: http.DefaultClient.
	JWKSClient *http.Client
	// JWKSRefresh is the refresh interval of JWKSURL. Default:
	// DefaultJWKSRefresh (one hour).
	JWKSRefresh time.Duration
	// JWKSMinRefreshInterval is the least time between two fetches of
	// JWKSURL caused by tokens naming an unknown kid, and the retry
	// interval after a failed fetch. Tokens with an unknown kid that
	// arrive while the limit holds are refused at once, without a fetch.
	// Default: DefaultJWKSMinRefreshInterval (one minute).
	JWKSMinRefreshInterval time.Duration
	// JWKSTimeout bounds one fetch of JWKSURL. Default:
	// DefaultJWKSTimeout (10s).
	JWKSTimeout time.Duration
	// Algorithms pins the accepted "alg" values (jwt.WithValidMethods).
	// Default: the algorithms of Keys. Required when only JWKSURL is set.
	// "none" is never accepted.
	Algorithms []string
	// Issuer is the required "iss" claim. Required.
	Issuer string
	// Audience is the required value in the "aud" claim. Required.
	Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default:
	// DefaultLeeway (30s); at most MaxLeeway. "exp" is always required.
	Leeway time.Duration
	// TenantClaim names the claim carrying the tenant id, a UUID string.
	// Default: DefaultTenantClaim ("tenant_id").
	TenantClaim string
	// MaxHeaderBytes caps the Authorization header. Default:
	// DefaultMaxHeaderBytes (8 KiB).
	MaxHeaderBytes int
	// Realm is the realm of the WWW-Authenticate challenge. Default:
	// DefaultRealm ("api").
	Realm string
	// Now is the clock, for the token's times and the JWKS rate limit.
	// Default: time.Now.
	Now func() time.Time
	// Logger receives refusals at debug level and failed JWKS fetches at
	// error level. Default: slog.Default().
	Logger *slog.Logger
}

// JWTVerifier verifies bearer JWTs and turns them into a Principal. It is
// safe for concurrent use.
type JWTVerifier struct {
	cfg    JWTConfig
	parser *jwt.Parser
	byID   map[string]Key
	noID   []Key
	jwks   *jwksCache // nil without a JWKSURL
	// staticKeyfunc is keyfunc bound once, for verifiers without a JWKS,
	// saving an allocation per token.
	staticKeyfunc jwt.Keyfunc
}

// NewJWTVerifier validates cfg and returns a verifier. With a JWKSURL it
// fetches the key set first, waiting at most until ctx ends; a failed
// fetch is logged and retried, not returned. ctx bounds only that wait:
// the background refresh lives until Close, so the usual
// context.WithTimeout plus defer cancel() around the constructor does not
// stop it. Call Close when the verifier is no longer needed.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	v := &JWTVerifier{cfg: cfg, byID: make(map[string]Key)}
	for _, k := range cfg.Keys {
		if err := v.addKey(k); err != nil {
			return nil, err
		}
	}
	v.staticKeyfunc = v.keyfunc(context.Background())
	v.parser = jwt.NewParser(
		jwt.WithValidMethods(cfg.Algorithms),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	)
	if cfg.JWKSURL != "" {
		v.jwks = newJWKSCache(cfg)
		v.jwks.start(ctx)
	}
	return v, nil
}

// Close stops the background refresh of the JWKS and waits for a fetch in
// progress. Keys already fetched and static keys keep verifying; a token
// naming an unknown kid no longer triggers a fetch. Close is safe to call
// more than once, and a no-op without a JWKSURL.
func (v *JWTVerifier) Close() {
	if v.jwks != nil {
		v.jwks.close()
	}
}

func (cfg *JWTConfig) setDefaults() error {
	if len(cfg.Keys) == 0 && cfg.JWKSURL == "" {
		return errs.Config("tenancy", "JWTConfig needs Keys or a JWKSURL")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return errs.Config("tenancy", "JWTConfig.Issuer and Audience are required")
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return errs.Config("tenancy", "JWTConfig.Leeway must be within 0..%s", MaxLeeway)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if len(cfg.Algorithms) == 0 {
		if cfg.JWKSURL != "" {
			return errs.Config("tenancy", "JWTConfig.Algorithms is required with a JWKSURL")
		}
		for _, k := range cfg.Keys {
			if !slices.Contains(cfg.Algorithms, k.Algorithm) {
				cfg.Algorithms = append(cfg.Algorithms, k.Algorithm)
			}
		}
	}
	for _, alg := range cfg.Algorithms {
		if jwt.GetSigningMethod(alg) == nil || strings.EqualFold(alg, "none") {
			return errs.Config("tenancy", "unsupported algorithm %q", alg)
		}
	}
	cfg.TenantClaim = cmp.Or(cfg.TenantClaim, DefaultTenantClaim)
	cfg.Realm = cmp.Or(cfg.Realm, DefaultRealm)
	if strings.ContainsAny(cfg.Realm, "\"\\\r\n") {
		return errs.Config("tenancy", "JWTConfig.Realm must not contain quotes, backslashes or line breaks")
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.JWKSRefresh < 0 || cfg.JWKSMinRefreshInterval < 0 || cfg.JWKSTimeout < 0 {
		return errs.Config("tenancy", "JWTConfig.JWKSRefresh, JWKSMinRefreshInterval and JWKSTimeout must not be negative")
	}
	cfg.JWKSRefresh = cmp.Or(cfg.JWKSRefresh, DefaultJWKSRefresh)
	cfg.JWKSMinRefreshInterval = cmp.Or(cfg.JWKSMinRefreshInterval, DefaultJWKSMinRefreshInterval)
	cfg.JWKSTimeout = cmp.Or(cfg.JWKSTimeout, DefaultJWKSTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return nil
}

func (v *JWTVerifier) addKey(k Key) error {
	if !slices.Contains(v.cfg.Algorithms, k.Algorithm) {
		return errs.Config("tenancy", "key %q uses %q, which Algorithms does not allow", k.ID, k.Algorithm)
	}
	if !keyFits(k.Algorithm, k.Key) {
		return errs.Config("tenancy", "key %q is not a valid %s verification key", k.ID, k.Algorithm)
	}
	if k.ID == "" {
		v.noID = append(v.noID, k)
		return nil
	}
	if _, dup := v.byID[k.ID]; dup {
		return errs.Config("tenancy", "two keys with id %q", k.ID)
	}
	v.byID[k.ID] = k
	return nil
}

// keyFits reports whether key is a verification key of the type alg needs.
func keyFits(alg string, key any) bool {
	switch alg {
	case "HS256", "HS384", "HS512":
		secret, ok := key.([]byte)
		return ok && len(secret) >= MinHMACKeyBytes
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		pub, ok := key.(*rsa.PublicKey)
		return ok && pub.N != nil && pub.N.BitLen() >= 2048
	case "ES256":
		return isECDSAOn(key, elliptic.P256())
	case "ES384":
		return isECDSAOn(key, elliptic.P384())
	case "ES512":
		return isECDSAOn(key, elliptic.P521())
	case "EdDSA":
		pub, ok := key.(ed25519.PublicKey)
		return ok && len(pub) == ed25519.PublicKeySize
	}
	return false
}

func isECDSAOn(key any, curve elliptic.Curve) bool {
	pub, ok := key.(*ecdsa.PublicKey)
	return ok && pub.Curve == curve
}

// Verify checks token and returns its principal. Errors wrap
// ErrInvalidToken (and the golang-jwt error) or ErrTenantNotGranted.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	return v.verify(ctx, token, nil)
}

// verify is Verify with room for the principal's scopes: when scopeBuf is
// not nil, the scopes are appended to scopeBuf[:0] (allocating only if
// they outgrow it).
func (v *JWTVerifier) verify(ctx context.Context, token string, scopeBuf []string) (Principal, error) {
	claims := claimsPool.Get().(jwt.MapClaims)
	defer putClaims(claims)
	keyfunc := v.staticKeyfunc
	if v.jwks != nil {
		keyfunc = v.keyfunc(ctx)
	}
	parsed, err := v.parser.ParseWithClaims(token, claims, keyfunc)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return v.principal(parsed, claims, scopeBuf)
}

// claimsPool recycles the claims maps of verified tokens. A Principal
// keeps only strings taken out of the map (and a new slice for array
// scopes), never the map or a value inside it, so once Verify has built
// the principal the map can be cleared and reused: the next token decodes
// into a map already sized for a token's claims instead of growing a new
// one.
var claimsPool = sync.Pool{New: func() any { return make(jwt.MapClaims, 16) }}

// maxPooledClaims bounds the maps kept for reuse: a token with a hundred
// claims is served, but its map is left to the collector.
const maxPooledClaims = 32

func putClaims(claims jwt.MapClaims) {
	if len(claims) > maxPooledClaims {
		return
	}
	clear(claims)
	claimsPool.Put(claims)
}

func (v *JWTVerifier) principal(token *jwt.Token, claims jwt.MapClaims, scopeBuf []string) (Principal, error) {
	raw, ok := claims[v.cfg.TenantClaim].(string)
	if !ok {
		return Principal{}, fmt.Errorf("%w: claim %q is missing or not a string", ErrTenantNotGranted, v.cfg.TenantClaim)
	}
	tenant, err := canonicalTenant(raw)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: claim %q is not a UUID", ErrTenantNotGranted, v.cfg.TenantClaim)
	}
	subject, _ := claims["sub"].(string)
	kid, _ := token.Header["kid"].(string)
	return Principal{
		Subject:  subject,
		TenantID: tenant,
		Scopes:   scopesOf(claims, scopeBuf),
		Method:   AuthJWT,
		KeyID:    kid,
	}, nil
}

// scopesOf collects the space-separated "scope" (RFC 8693) or "scp"
// claim and the "scopes" and "roles" arrays: into buf[:0] when buf is not
// nil, else into a new slice. It returns nil when there are none.
func scopesOf(claims jwt.MapClaims, buf []string) []string {
	var scopes []string
	if buf != nil {
		scopes = buf[:0]
	}
	for _, name := range []string{"scope", "scp", "scopes", "roles"} {
		switch value := claims[name].(type) {
		case string:
			if scopes == nil {
				scopes = strings.Fields(value) // the common case: one allocation, exactly sized
				continue
			}
			for f := range strings.FieldsSeq(value) {
				scopes = append(scopes, f)
			}
		case []any:
			for _, s := range value {
				if s, ok := s.(string); ok && s != "" {
					scopes = append(scopes, s)
				}
			}
		}
	}
	if len(scopes) == 0 {
		return nil
	}
	return slices.Clip(scopes) // an append by the caller must not write into buf
}

var (
	errUnknownKey  = errors.New("no key for the token's kid and algorithm")
	errKeyMismatch = errors.New("the key's algorithm differs from the token's")
)

// keyfunc selects the verification key: by kid when the token has one
// (static keys first, then the JWKS), otherwise every key without an id of
// the token's algorithm. A key is only ever used for its own algorithm.
func (v *JWTVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(token *jwt.Token) (any, error) {
		alg := token.Method.Alg()
		rawKID, hasKID := token.Header["kid"]
		if !hasKID {
			return v.keysWithoutID(alg)
		}
		kid, ok := rawKID.(string)
		if !ok {
			return nil, errUnknownKey
		}
		if k, ok := v.byID[kid]; ok {
			if k.Algorithm != alg {
				return nil, errKeyMismatch
			}
			return k.Key, nil
		}
		if v.jwks == nil {
			return nil, errUnknownKey
		}
		k, err := v.jwks.lookup(ctx, kid)
		if err != nil {
			return nil, err
		}
		if (k.alg != "" && k.alg != alg) || !keyFits(alg, k.key) {
			return nil, errKeyMismatch
		}
		return k.key, nil
	}
}

func (v *JWTVerifier) keysWithoutID(alg string) (any, error) {
	var set jwt.VerificationKeySet
	for _, k := range v.noID {
		if k.Algorithm == alg {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil, errUnknownKey
	case 1:
		return set.Keys[0], nil
	default:
		return set, nil
	}
}

// publicOf turns a private key from a JWKS into its public key.
func publicOf(key any) any {
	if priv, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		return priv.Public()
	}
	return key
}

// Authenticate verifies the Bearer token of r.
func (v *JWTVerifier) Authenticate(r *http.Request) (Principal, error) {
	return v.authenticate(r, nil)
}

func (v *JWTVerifier) authenticate(r *http.Request, scopeBuf []string) (Principal, error) {
	token, err := bearerToken(r, v.cfg.MaxHeaderBytes)
	if err != nil {
		return Principal{}, err
	}
	return v.verify(r.Context(), token, scopeBuf)
}

// Handler is middleware that admits only requests with a valid bearer JWT
// and puts its Principal and tenant in the request's context. A missing or
// bad credential gets a 401 problem+json with a WWW-Authenticate: Bearer
// challenge; a valid token without a usable tenant gets a 403.
func (v *JWTVerifier) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One allocation holds the context entry, the principal and up to
		// len(pc.scopes) scopes.
		pc := &principalCtx{Context: r.Context()}
		p, err := v.authenticate(r, pc.scopes[:0])
		if err != nil {
			writeAuthError(w, r, v.cfg.Realm, v.cfg.Logger, err)
			return
		}
		// principal returned the tenant in canonical form.
		pc.id = identity{tenant: p.TenantID, principal: p, hasPrincipal: true}
		next.ServeHTTP(w, r.WithContext(pc))
	})
}

// authHandler is the middleware shared by JWTVerifier and Authenticator.
func authHandler(authenticate func(*http.Request) (Principal, error), realm string, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := authenticate(r)
		if err != nil {
			writeAuthError(w, r, realm, logger, err)
			return
		}
		ctx, err := withVerifiedPrincipal(r.Context(), p)
		if err != nil {
			writeAuthError(w, r, realm, logger, fmt.Errorf("%w: %w", ErrTenantNotGranted, err))
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// canonicalTenant validates a tenant id, returning it as is (no
// allocation) when it is already canonical.
func canonicalTenant(raw string) (string, error) {
	if isCanonicalUUID(raw) {
		return raw, nil
	}
	return rls.ParseTenant(raw)
}
