package ratelimit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/clocktest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/ratelimit"
)

const (
	tenantA = "6f1c1a8e-0000-4000-8000-00000000000a"
	tenantB = "6f1c1a8e-0000-4000-8000-00000000000b"
)

var (
	testNow  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	secret   = []byte("0123456789abcdef0123456789abcdef-hmac")
	issuer   = "https://issuer.test"
	audience = "dealix-api"
)

func newFakeClock() *clocktest.Clock { return clocktest.New(testNow) }

// token signs an HS256 JWT for tenant that the test verifier accepts.
func token(t testing.TB, tenant string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": issuer, "aud": audience, "sub": "user-42", "tenant_id": tenant,
		"exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "hs-1"
	s, err := tok.SignedString(secret)
	require.NoError(t, err)
	return s
}

type limitedResponse struct {
	status                    int
	policy, limit, retryAfter string
	body                      map[string]any
}

// limitedServer chains JWT authentication, the limiter and a 200 handler.
func limitedServer(t *testing.T, limiter *ratelimit.Limiter) *httptest.Server {
	t.Helper()
	verifier, err := tenancy.NewJWTVerifier(context.Background(), tenancy.JWTConfig{
		Keys:   []tenancy.Key{{ID: "hs-1", Algorithm: "HS256", Key: secret}},
		Issuer: issuer, Audience: audience,
	})
	require.NoError(t, err)
	srv := httptest.NewServer(verifier.Handler(limiter.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))))
	t.Cleanup(srv.Close)
	return srv
}

func limitedCall(t *testing.T, srv *httptest.Server, tenant string, extra map[string]string) limitedResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token(t, tenant))
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out := limitedResponse{
		status: res.StatusCode, policy: res.Header.Get("RateLimit-Policy"),
		limit: res.Header.Get("RateLimit"), retryAfter: res.Header.Get("Retry-After"),
	}
	if res.StatusCode != http.StatusOK {
		require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(res.Body).Decode(&out.body))
	}
	return out
}

func TestRateLimitBurstThen429WithHeaders(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	limiter, err := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Rate{Requests: 3, Window: 3 * time.Second},
		Now:     clock.Now,
	})
	require.NoError(t, err)
	srv := limitedServer(t, limiter)

	const policy = `"default";q=3;w=3`
	for i, want := range []string{`"default";r=2;t=1`, `"default";r=1;t=2`, `"default";r=0;t=3`} {
		res := limitedCall(t, srv, tenantA, nil)
		require.Equal(t, http.StatusOK, res.status, i)
		require.Equal(t, policy, res.policy)
		require.Equal(t, want, res.limit)
		require.Empty(t, res.retryAfter)
	}

	// The client cannot pick another bucket with a header of its own.
	res := limitedCall(t, srv, tenantA, map[string]string{"X-Forwarded-For": "10.9.9.9", "X-Tenant-ID": tenantB, "X-API-Key": "x"})
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.Equal(t, "1", res.retryAfter)
	require.Equal(t, policy, res.policy)
	require.Equal(t, `"default";r=0;t=3`, res.limit)
	require.Equal(t, "rate limit exceeded", res.body["detail"])
	require.EqualValues(t, 1, res.body["retry_after"])
	require.Equal(t, "default", res.body["policy"])

	// Tenant B has its own bucket.
	res = limitedCall(t, srv, tenantB, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, `"default";r=2;t=1`, res.limit)

	// One token comes back per second.
	clock.Advance(time.Second)
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, `"default";r=0;t=3`, res.limit)
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, http.StatusTooManyRequests, res.status)

	clock.Advance(10 * time.Second)
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, `"default";r=2;t=1`, res.limit, "the bucket refilled to its burst and no further")
}

func TestRateLimitPlans(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	plan := map[string]string{tenantB: "pro"}
	var mu sync.Mutex
	limiter, err := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Rate{Requests: 1, Window: time.Minute},
		Plans:   map[string]ratelimit.Rate{"pro": {Requests: 600, Window: time.Minute, Burst: 10}},
		PlanOf: func(p tenancy.Principal) string {
			mu.Lock()
			defer mu.Unlock()
			return plan[p.TenantID]
		},
		Now: clock.Now,
	})
	require.NoError(t, err)
	srv := limitedServer(t, limiter)

	res := limitedCall(t, srv, tenantB, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, `"pro";q=600;w=60`, res.policy)
	require.Equal(t, `"pro";r=9;t=1`, res.limit)

	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, `"default";q=1;w=60`, res.policy)
	require.Equal(t, `"default";r=0;t=60`, res.limit)
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.Equal(t, "60", res.retryAfter)

	// An upgrade takes effect on the existing bucket: it keeps its level
	// (empty) but now refills at the plan's rate, 10 a second.
	mu.Lock()
	plan[tenantA] = "pro"
	mu.Unlock()
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.Equal(t, `"pro";q=600;w=60`, res.policy)
	require.Equal(t, "1", res.retryAfter)
	clock.Advance(time.Second)
	res = limitedCall(t, srv, tenantA, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, `"pro";r=9;t=1`, res.limit)
}

func TestRateLimitByCredential(t *testing.T) {
	t.Parallel()
	limiter, err := ratelimit.New(ratelimit.Config{
		Default: ratelimit.Rate{Requests: 1, Window: time.Minute},
		Key:     ratelimit.KeyByCredential,
		Now:     newFakeClock().Now,
	})
	require.NoError(t, err)
	key1 := tenancy.Principal{TenantID: tenantA, Method: tenancy.AuthAPIKey, KeyID: "dlx_one"}
	key2 := tenancy.Principal{TenantID: tenantA, Method: tenancy.AuthAPIKey, KeyID: "dlx_two"}
	user := tenancy.Principal{TenantID: tenantA, Method: tenancy.AuthJWT, Subject: "u1"}
	for _, p := range []tenancy.Principal{key1, key2, user} {
		require.True(t, limiter.Allow(p).Allowed)
		d := limiter.Allow(p)
		require.False(t, d.Allowed)
		require.Equal(t, time.Minute, d.RetryAfter)
	}
	require.Equal(t, 3, limiter.Len())
}

func TestRateLimitMemoryIsBounded(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	limiter, err := ratelimit.New(ratelimit.Config{
		Default:     ratelimit.Rate{Requests: 1, Window: time.Minute},
		MaxEntries:  100,
		IdleTimeout: time.Minute,
		Now:         clock.Now,
	})
	require.NoError(t, err)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				d := limiter.Allow(tenancy.Principal{TenantID: fmt.Sprintf("6f1c1a8e-0000-4000-8000-%06d%06d", g, i)})
				if !d.Allowed {
					t.Errorf("a fresh bucket refused its first request")
					return
				}
				if n := limiter.Len(); n > 100 {
					t.Errorf("%d entries, cap 100", n)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 100, limiter.Len())

	// The most recently used bucket survived and still remembers its use.
	recent := tenancy.Principal{TenantID: fmt.Sprintf("6f1c1a8e-0000-4000-8000-%06d%06d", 0, 1999)}
	last := tenancy.Principal{TenantID: "6f1c1a8e-0000-4000-8000-ffffffffffff"}
	require.True(t, limiter.Allow(last).Allowed)
	require.False(t, limiter.Allow(last).Allowed)

	// Idle buckets go: after the timeout only the newly used one is left.
	clock.Advance(time.Minute)
	require.True(t, limiter.Allow(recent).Allowed)
	require.Equal(t, 1, limiter.Len())
}

func TestRateLimitWithoutPrincipalIs401(t *testing.T) {
	t.Parallel()
	limiter, err := ratelimit.New(ratelimit.Config{Default: ratelimit.Rate{Requests: 1, Window: time.Second}})
	require.NoError(t, err)
	srv := httptest.NewServer(limiter.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	req.Header.Set("X-Tenant-ID", tenantA)
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	require.Equal(t, `Bearer realm="api"`, res.Header.Get("WWW-Authenticate"))
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	require.Contains(t, string(body), `"status":401`)
}

func TestNewRateLimiterRejectsBadConfig(t *testing.T) {
	t.Parallel()
	ok := ratelimit.Rate{Requests: 1, Window: time.Second}
	for name, cfg := range map[string]ratelimit.Config{
		"no default":        {},
		"sub-second window": {Default: ratelimit.Rate{Requests: 1, Window: time.Millisecond}},
		"fractional window": {Default: ratelimit.Rate{Requests: 1, Window: 1500 * time.Millisecond}},
		"negative burst":    {Default: ratelimit.Rate{Requests: 1, Window: time.Second, Burst: -1}},
		"bad plan":          {Default: ok, Plans: map[string]ratelimit.Rate{"pro": {}}},
		"quote in plan":     {Default: ok, Plans: map[string]ratelimit.Rate{`p"`: ok}},
		"unknown key":       {Default: ok, Key: 7},
		"negative cap":      {Default: ok, MaxEntries: -1},
	} {
		_, err := ratelimit.New(cfg)
		require.ErrorIs(t, err, ratelimit.ErrInvalidConfig, name)
		require.ErrorIs(t, err, tenancy.ErrInvalidConfig, name)
	}
}
