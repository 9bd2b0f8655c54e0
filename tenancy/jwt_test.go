package tenancy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/tenancy"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "dealix-api"
)

var (
	testNow    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	testClock  = func() time.Time { return testNow }
	hmacSecret = []byte("0123456789abcdef0123456789abcdef-hmac")

	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	edPub    ed25519.PublicKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err == nil {
			rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048)
		}
		if err == nil {
			ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err == nil {
			edPub, edKey, err = ed25519.GenerateKey(rand.Reader)
		}
		if err != nil {
			panic(err)
		}
	})
}

func newVerifier(t testing.TB, mutate ...func(*tenancy.JWTConfig)) *tenancy.JWTVerifier {
	t.Helper()
	testKeys(t)
	cfg := tenancy.JWTConfig{
		Keys: []tenancy.Key{
			{ID: "rsa-1", Algorithm: "RS256", Key: &rsaKey.PublicKey},
			{ID: "rsa-2", Algorithm: "RS256", Key: &rsaKey2.PublicKey},
			{ID: "ec-1", Algorithm: "ES256", Key: &ecKey.PublicKey},
			{ID: "ed-1", Algorithm: "EdDSA", Key: edPub},
			{ID: "hs-1", Algorithm: "HS256", Key: hmacSecret},
		},
		Issuer:   testIssuer,
		Audience: testAudience,
		Now:      testClock,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	v, err := tenancy.NewJWTVerifier(context.Background(), cfg)
	require.NoError(t, err)
	return v
}

func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"aud":       testAudience,
		"sub":       "user-42",
		"iat":       testNow.Add(-time.Minute).Unix(),
		"exp":       testNow.Add(time.Hour).Unix(),
		"tenant_id": tenantA,
		"scope":     "deals:read deals:write",
	}
}

func sign(t testing.TB, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	token := jwt.NewWithClaims(method, claims)
	if kid != "" {
		token.Header["kid"] = kid
	}
	s, err := token.SignedString(key)
	require.NoError(t, err)
	return s
}

func with(claims jwt.MapClaims, key string, value any) jwt.MapClaims {
	if value == nil {
		delete(claims, key)
	} else {
		claims[key] = value
	}
	return claims
}

// principalServer answers 200 with the request's principal as JSON.
func principalServer(t testing.TB, mw func(http.Handler) http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := tenancy.PrincipalFrom(r.Context())
		tenant, _ := tenancy.TenantFrom(r.Context())
		if !ok || tenant != p.TenantID {
			http.Error(w, "no principal", http.StatusTeapot)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	})))
	// Large enough for the megabyte header, so the middleware's own cap is
	// what refuses it.
	srv.Config.MaxHeaderBytes = 4 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status    int
	challenge string
	body      map[string]any
	principal tenancy.Principal
}

func call(t testing.TB, srv *httptest.Server, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := response{status: res.StatusCode, challenge: res.Header.Get("WWW-Authenticate")}
	if res.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(raw, &out.principal))
		return out
	}
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"), string(raw))
	require.NoError(t, json.Unmarshal(raw, &out.body))
	require.EqualValues(t, res.StatusCode, out.body["status"])
	return out
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

func TestJWTMiddlewareAcceptsValidTokens(t *testing.T) {
	t.Parallel()
	srv := principalServer(t, newVerifier(t).Handler)
	expiredWithinLeeway := with(validClaims(), "exp", testNow.Add(-10*time.Second).Unix())
	cases := []struct {
		name, kid string
		token     string
	}{
		{"RS256", "rsa-1", sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, validClaims())},
		{"RS256 rotated key", "rsa-2", sign(t, jwt.SigningMethodRS256, "rsa-2", rsaKey2, validClaims())},
		{"ES256", "ec-1", sign(t, jwt.SigningMethodES256, "ec-1", ecKey, validClaims())},
		{"EdDSA", "ed-1", sign(t, jwt.SigningMethodEdDSA, "ed-1", edKey, validClaims())},
		{"HS256", "hs-1", sign(t, jwt.SigningMethodHS256, "hs-1", hmacSecret, validClaims())},
		{"expired within leeway", "rsa-1", sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, expiredWithinLeeway)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, srv, bearer(tc.token))
			require.Equal(t, http.StatusOK, res.status, res.body)
			require.Equal(t, tenancy.Principal{
				Subject: "user-42", TenantID: tenantA, Scopes: []string{"deals:read", "deals:write"},
				Method: tenancy.AuthJWT, KeyID: tc.kid,
			}, res.principal)
		})
	}
}

func TestJWTMiddlewareAttackTable(t *testing.T) {
	t.Parallel()
	testKeys(t)
	srv := principalServer(t, newVerifier(t).Handler)

	// alg=none, as an attacker writes it by hand.
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"rsa-1"}`))
	payload, err := json.Marshal(validClaims())
	require.NoError(t, err)
	algNone := noneHeader + "." + base64.RawURLEncoding.EncodeToString(payload) + "."

	// HS256 "signed" with the RSA public key's PEM: algorithm confusion.
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	publicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	confused := sign(t, jwt.SigningMethodHS256, "rsa-1", publicPEM, validClaims())

	// Tampered payload: a valid token whose payload now names tenant B.
	valid := sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, validClaims())
	parts := strings.Split(valid, ".")
	forged, err := json.Marshal(with(validClaims(), "tenant_id", tenantB))
	require.NoError(t, err)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	const invalid = `Bearer realm="api", error="invalid_token"`
	rs := func(claims jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims) }
	cases := []struct {
		name      string
		headers   map[string]string
		status    int
		challenge string
	}{
		{"no credentials", nil, 401, `Bearer realm="api"`},
		{"basic scheme", map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, 401, invalid},
		{"not a JWT", bearer("abc"), 401, invalid},
		{"alg none", bearer(algNone), 401, invalid},
		{"HS256 with the RSA public key", bearer(confused), 401, invalid},
		{"expired", bearer(rs(with(validClaims(), "exp", testNow.Add(-time.Hour).Unix()))), 401, invalid},
		{"not yet valid", bearer(rs(with(validClaims(), "nbf", testNow.Add(time.Hour).Unix()))), 401, invalid},
		{"issued in the future", bearer(rs(with(validClaims(), "iat", testNow.Add(time.Hour).Unix()))), 401, invalid},
		{"wrong issuer", bearer(rs(with(validClaims(), "iss", "https://evil.test"))), 401, invalid},
		{"wrong audience", bearer(rs(with(validClaims(), "aud", "other-api"))), 401, invalid},
		{"no exp", bearer(rs(with(validClaims(), "exp", nil))), 401, invalid},
		{"tampered payload", bearer(tampered), 401, invalid},
		{"unknown kid", bearer(sign(t, jwt.SigningMethodRS256, "rsa-9", rsaKey, validClaims())), 401, invalid},
		{"kid of another algorithm", bearer(sign(t, jwt.SigningMethodES256, "rsa-1", ecKey, validClaims())), 401, invalid},
		{"signed by a key not in the set", bearer(sign(t, jwt.SigningMethodRS256, "rsa-2", rsaKey, validClaims())), 401, invalid},
		{"megabyte of dots", bearer(strings.Repeat(".", 1<<20)), 401, invalid},
		{"tenant claim missing", bearer(rs(with(validClaims(), "tenant_id", nil))), 403, ""},
		{"tenant claim not a UUID", bearer(rs(with(validClaims(), "tenant_id", "acme'; DROP TABLE x"))), 403, ""},
		{"tenant claim not a string", bearer(rs(with(validClaims(), "tenant_id", 42))), 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := call(t, srv, tc.headers)
			require.Equal(t, tc.status, res.status, res.body)
			require.Equal(t, tc.challenge, res.challenge)
			require.NotEmpty(t, res.body["detail"])
		})
	}
}

func TestJWTVerifyWrapsCauses(t *testing.T) {
	t.Parallel()
	v := newVerifier(t)
	ctx := context.Background()
	_, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, with(validClaims(), "exp", testNow.Add(-time.Hour).Unix())))
	require.ErrorIs(t, err, tenancy.ErrInvalidToken)
	require.ErrorIs(t, err, jwt.ErrTokenExpired)

	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, with(validClaims(), "tenant_id", "x")))
	require.ErrorIs(t, err, tenancy.ErrTenantNotGranted)
	require.Equal(t, http.StatusForbidden, tenancy.StatusOf(err))
}

func TestJWTCustomTenantClaimAndKeyWithoutID(t *testing.T) {
	t.Parallel()
	testKeys(t)
	v := newVerifier(t, func(c *tenancy.JWTConfig) {
		c.Keys = []tenancy.Key{{Algorithm: "ES256", Key: &ecKey.PublicKey}}
		c.TenantClaim = "org"
	})
	claims := with(with(validClaims(), "tenant_id", nil), "org", strings.ToUpper(tenantB))
	claims["roles"] = []any{"admin"}
	p, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodES256, "", ecKey, claims))
	require.NoError(t, err)
	require.Equal(t, tenantB, p.TenantID, "the tenant is canonicalised")
	require.Equal(t, []string{"deals:read", "deals:write", "admin"}, p.Scopes)
	require.True(t, p.HasScope("admin"))
}

func TestNewJWTVerifierRejectsBadConfig(t *testing.T) {
	t.Parallel()
	testKeys(t)
	rsaKeyCfg := tenancy.Key{ID: "k", Algorithm: "RS256", Key: &rsaKey.PublicKey}
	for name, cfg := range map[string]tenancy.JWTConfig{
		"no keys":            {Issuer: "i", Audience: "a"},
		"no issuer":          {Keys: []tenancy.Key{rsaKeyCfg}, Audience: "a"},
		"no audience":        {Keys: []tenancy.Key{rsaKeyCfg}, Issuer: "i"},
		"short HMAC secret":  {Keys: []tenancy.Key{{Algorithm: "HS256", Key: []byte("short")}}, Issuer: "i", Audience: "a"},
		"key type mismatch":  {Keys: []tenancy.Key{{Algorithm: "HS256", Key: &rsaKey.PublicKey}}, Issuer: "i", Audience: "a"},
		"alg none":           {Keys: []tenancy.Key{rsaKeyCfg}, Algorithms: []string{"none"}, Issuer: "i", Audience: "a"},
		"key alg not pinned": {Keys: []tenancy.Key{rsaKeyCfg}, Algorithms: []string{"ES256"}, Issuer: "i", Audience: "a"},
		"duplicate kid":      {Keys: []tenancy.Key{rsaKeyCfg, rsaKeyCfg}, Issuer: "i", Audience: "a"},
		"huge leeway":        {Keys: []tenancy.Key{rsaKeyCfg}, Issuer: "i", Audience: "a", Leeway: time.Hour},
		"JWKS without algs":  {JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "i", Audience: "a"},
		"quote in realm":     {Keys: []tenancy.Key{rsaKeyCfg}, Issuer: "i", Audience: "a", Realm: `a"b`},
	} {
		_, err := tenancy.NewJWTVerifier(context.Background(), cfg)
		require.ErrorIs(t, err, tenancy.ErrInvalidConfig, name)
	}
}

// jwksServer serves a JWK Set of Ed25519 keys that a test can change.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys map[string]ed25519.PublicKey
	hits atomic.Int64
	// served receives the number of each answered request, when a test
	// waits for one (it never blocks the server).
	served chan int64
	// failWith, when not zero, is the status every request gets.
	failWith atomic.Int32
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{keys: map[string]ed25519.PublicKey{}, served: make(chan int64, 1024)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.hits.Add(1)
		defer func() {
			select {
			case s.served <- n:
			default:
			}
		}()
		if status := s.failWith.Load(); status != 0 {
			http.Error(w, "unavailable", int(status))
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, pub := range s.keys {
			set.Keys = append(set.Keys, map[string]string{
				"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
				"x": base64.RawURLEncoding.EncodeToString(pub),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) put(kid string, pub ed25519.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid] = pub
}

// rotate replaces every key of the set with pub under kid.
func (s *jwksServer) rotate(kid string, pub ed25519.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.keys)
	s.keys[kid] = pub
}

// waitServed waits for a request numbered above after to be answered.
func (s *jwksServer) waitServed(t *testing.T, ctx context.Context, after int64) {
	t.Helper()
	for {
		select {
		case n := <-s.served:
			if n > after {
				// Let the verifier store what it fetched: the response is
				// written before the handler returns.
				return
			}
		case <-ctx.Done():
			t.Fatalf("no JWKS request after #%d: %v", after, ctx.Err())
		}
	}
}

func TestJWTVerifierWithJWKSRefreshesOnUnknownKID(t *testing.T) {
	t.Parallel()
	jwks := newJWKSServer(t)
	pub1, priv1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pub2, priv2, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	jwks.put("jwks-1", pub1)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := tenancy.NewJWTVerifier(ctx, tenancy.JWTConfig{
		JWKSURL: jwks.URL, JWKSClient: jwks.Client(), Algorithms: []string{"EdDSA"},
		Issuer: testIssuer, Audience: testAudience, Now: testClock,
	})
	require.NoError(t, err)
	t.Cleanup(v.Close)

	p, err := v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, "jwks-1", priv1, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "jwks-1", p.KeyID)

	// The issuer rotates: the new kid is unknown until the set is fetched
	// again, which an unknown kid triggers.
	jwks.put("jwks-2", pub2)
	before := jwks.hits.Load()
	p, err = v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, "jwks-2", priv2, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "jwks-2", p.KeyID)
	require.Greater(t, jwks.hits.Load(), before)

	// A key the set never had stays unknown, and an algorithm outside the
	// pinned list is refused before any key is looked up.
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, "jwks-3", priv2, validClaims()))
	require.ErrorIs(t, err, tenancy.ErrInvalidToken)
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodHS256, "jwks-1", hmacSecret, validClaims()))
	require.ErrorIs(t, err, jwt.ErrTokenSignatureInvalid)
}

// settableClock is a clock a test moves by hand; safe for concurrent use.
type settableClock struct{ ns atomic.Int64 }

func newSettableClock(t time.Time) *settableClock {
	c := &settableClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *settableClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *settableClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func newEd25519(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return pub, priv
}

// TestJWKSRefreshOutlivesTheConstructorContext builds the verifier the
// usual way (WithTimeout, then cancel) and shows that the background
// refresh still runs: after the issuer rotates its keys, a token with the
// new kid is accepted without any fetch of its own.
func TestJWKSRefreshOutlivesTheConstructorContext(t *testing.T) {
	t.Parallel()
	jwks := newJWKSServer(t)
	pub1, priv1 := newEd25519(t)
	pub2, priv2 := newEd25519(t)
	jwks.put("2026-01", pub1)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	v, err := tenancy.NewJWTVerifier(ctx, tenancy.JWTConfig{
		JWKSURL: jwks.URL, JWKSClient: jwks.Client(), Algorithms: []string{"EdDSA"},
		Issuer: testIssuer, Audience: testAudience, Now: testClock,
		JWKSRefresh: 20 * time.Millisecond,
	})
	cancel()
	require.NoError(t, err)
	t.Cleanup(v.Close)
	verify := context.Background()

	_, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-01", priv1, validClaims()))
	require.NoError(t, err)
	jwks.rotate("2026-02", pub2)
	// Nothing verifies while the test waits, so only the background
	// refresh can make requests: wait for two after the rotation (the
	// loop starts the second only after storing the first).
	wait, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	rotatedAt := jwks.hits.Load()
	jwks.waitServed(t, wait, rotatedAt+1)

	p, err := v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-02", priv2, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "2026-02", p.KeyID)
	_, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-01", priv1, validClaims()))
	require.ErrorIs(t, err, tenancy.ErrInvalidToken, "the rotated-out key is gone")

	// Close stops the refresh: no request after it returns.
	v.Close()
	closedAt := jwks.hits.Load()
	_, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "after-close", priv2, validClaims()))
	require.ErrorIs(t, err, tenancy.ErrInvalidToken)
	p, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-02", priv2, validClaims()))
	require.NoError(t, err, "keys fetched before Close still verify")
	require.Equal(t, "2026-02", p.KeyID)
	v.Close() // twice is fine
	require.Equal(t, closedAt, jwks.hits.Load())
}

// TestJWKSUnknownKIDRefreshIsRateLimited: a token with an unknown kid
// triggers one fetch, a flood of them no more, and once the interval has
// passed the next unknown kid fetches again.
func TestJWKSUnknownKIDRefreshIsRateLimited(t *testing.T) {
	t.Parallel()
	jwks := newJWKSServer(t)
	pub1, priv1 := newEd25519(t)
	pub2, priv2 := newEd25519(t)
	jwks.put("2026-01", pub1)
	clock := newSettableClock(testNow)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	v, err := tenancy.NewJWTVerifier(ctx, tenancy.JWTConfig{
		JWKSURL: jwks.URL, JWKSClient: jwks.Client(), Algorithms: []string{"EdDSA"},
		Issuer: testIssuer, Audience: testAudience, Now: clock.Now,
		JWKSMinRefreshInterval: time.Minute,
	})
	cancel() // the constructor's context ends at once
	require.NoError(t, err)
	t.Cleanup(v.Close)
	require.EqualValues(t, 1, jwks.hits.Load(), "the constructor fetched the set")
	verify := context.Background()

	// The issuer rotates; the first token with the new kid triggers a
	// fetch and is accepted.
	jwks.put("2026-02", pub2)
	p, err := v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-02", priv2, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "2026-02", p.KeyID)
	require.EqualValues(t, 2, jwks.hits.Load())

	// A flood of made-up kids, concurrently: at most the one fetch the
	// limit allows per interval, and it has been spent.
	const flood = 64
	var wg sync.WaitGroup
	errs := make([]error, flood)
	for i := range flood {
		wg.Go(func() {
			kid := "forged-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
			_, errs[i] = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, kid, priv1, validClaims()))
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.ErrorIs(t, err, tenancy.ErrInvalidToken)
	}
	require.EqualValues(t, 2, jwks.hits.Load(), "the flood fetched nothing")

	// Known keys verify meanwhile without a fetch.
	_, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-01", priv1, validClaims()))
	require.NoError(t, err)

	// Another rotation inside the interval waits for the limit...
	pub3, priv3 := newEd25519(t)
	jwks.put("2026-03", pub3)
	_, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-03", priv3, validClaims()))
	require.ErrorIs(t, err, tenancy.ErrInvalidToken)
	require.EqualValues(t, 2, jwks.hits.Load())

	// ...and is picked up once it has passed: exactly one more fetch for
	// a second flood.
	clock.Advance(time.Minute)
	for range flood {
		wg.Go(func() {
			_, _ = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-03", priv3, validClaims()))
		})
	}
	wg.Wait()
	require.EqualValues(t, 3, jwks.hits.Load())
	p, err = v.Verify(verify, sign(t, jwt.SigningMethodEdDSA, "2026-03", priv3, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "2026-03", p.KeyID)
}

// TestJWKSFirstFetchFailureIsRetried: an identity provider that is down at
// start does not fail the constructor; the first token after it is back
// triggers a fetch.
func TestJWKSFirstFetchFailureIsRetried(t *testing.T) {
	t.Parallel()
	jwks := newJWKSServer(t)
	pub, priv := newEd25519(t)
	jwks.failWith.Store(http.StatusServiceUnavailable)
	jwks.put("k", pub)
	v, err := tenancy.NewJWTVerifier(context.Background(), tenancy.JWTConfig{
		JWKSURL: jwks.URL, JWKSClient: jwks.Client(), Algorithms: []string{"EdDSA"},
		Issuer: testIssuer, Audience: testAudience, Now: testClock,
	})
	require.NoError(t, err)
	t.Cleanup(v.Close)
	require.EqualValues(t, 1, jwks.hits.Load())

	jwks.failWith.Store(0)
	p, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, "k", priv, validClaims()))
	require.NoError(t, err)
	require.Equal(t, "k", p.KeyID)
}
