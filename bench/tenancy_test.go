package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// Authentication per request, side by side with the floor a hand-written
// check cannot go below.

const (
	jwtIssuer   = "https://issuer.example"
	jwtAudience = "dealix-api"
	jwtTenant   = "6f1c1a8e-0000-4000-8000-00000000000a"
)

var jwtSecret = []byte("0123456789abcdef0123456789abcdef-hmac")

// jwtSides returns the sides of the JWT comparison, bare first, all
// checking one HS256 token (kid "hs-1"; iss, aud, sub, iat, exp an hour
// ahead, tenant_id and a two-word scope; 300 bytes) against the real
// clock:
//
//   - bare: golang-jwt v5 alone, jwt.NewParser with the options the
//     verifier sets (WithValidMethods HS256, WithIssuer, WithAudience,
//     WithExpirationRequired, WithIssuedAt, WithLeeway 30s), a keyfunc
//     returning the secret, ParseWithClaims into a new jwt.MapClaims.
//   - verify: tenancy.JWTVerifier.Verify with one HS256 key by kid: the
//     same parse, key chosen by kid and algorithm, claims mapped to a
//     Principal (tenant UUID checked, scopes split).
//   - middleware: the verifier's Handler around an empty handler, the token
//     in "Authorization: Bearer": header checks (length, scheme, token68),
//     Verify, the principal and tenant put in the context, r.WithContext,
//     the next handler called.
func jwtSides(tb testing.TB) []benchSide {
	tb.Helper()
	now := time.Now()
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "user-42",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"tenant_id": jwtTenant, "scope": "deals:read deals:write",
	})
	token.Header["kid"] = "hs-1"
	signed, err := token.SignedString(jwtSecret)
	if err != nil {
		tb.Fatal(err)
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(jwtIssuer),
		jwt.WithAudience(jwtAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(tenancy.DefaultLeeway))
	keyfunc := func(*jwt.Token) (any, error) { return jwtSecret, nil }
	v, err := tenancy.NewJWTVerifier(context.Background(), tenancy.JWTConfig{
		Keys:   []tenancy.Key{{ID: "hs-1", Algorithm: "HS256", Key: jwtSecret}},
		Issuer: jwtIssuer, Audience: jwtAudience, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Close)
	ctx := context.Background()
	return []benchSide{
		{"bare", func() error {
			_, err := parser.ParseWithClaims(signed, jwt.MapClaims{}, keyfunc)
			return err
		}},
		{"verify", func() error {
			_, err := v.Verify(ctx, signed)
			return err
		}},
		{"middleware", serveOK(v.Handler, "Authorization", "Bearer "+signed)},
	}
}

// serveOK returns a side that sends one request with header name: value
// through mw around an empty handler. The first call also checks that the
// principal reached the handler; the timed calls leave the handler empty.
func serveOK(mw func(http.Handler) http.Handler, name, value string) func() error {
	checked, seen := false, false
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checked {
			_, seen = tenancy.PrincipalFrom(r.Context())
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(name, value)
	w := httptest.NewRecorder()
	return func() error {
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			return fmt.Errorf("status %d", w.Code)
		}
		if !checked {
			checked = true
			if !seen {
				return errors.New("the handler saw no principal")
			}
		}
		return nil
	}
}

// BenchmarkJWTAuth runs the JWT sides interleaved (blocks of 16 calls,
// order rotating) and reports each side's ns and allocations per call and
// the median per-round ratios verify/bare and middleware/bare (the goal:
// middleware/bare at most 1.10). The sides are described at jwtSides.
//
//	cd bench && go test -run '^$' -bench BenchmarkJWTAuth -count 6
func BenchmarkJWTAuth(b *testing.B) {
	interleaveSides(b, 16, jwtSides(b))
}

// BenchmarkAPIKeyAuth compares API-key authentication with a warm cache
// (tenancy.APIKeysConfig.CacheTTL an hour, so no side reaches the database
// in the timed loop; the key was verified once against the test
// PostgreSQL before) with its floor, interleaved (blocks of 64 calls):
//
//   - bare: sha256.Sum256 of the presented key and a lookup of that hash
//     in a map[[32]byte]tenancy.Principal under a sync.RWMutex read lock,
//     what an in-memory check safe for concurrent use needs at least.
//   - authenticate: tenancy.APIKeys.Authenticate(ctx, key), answered from
//     its cache (the same hash, lookup and an expiry check).
//   - middleware: tenancy.Authenticator with APIKeys only, its Handler
//     around an empty handler, the key in "Authorization: Bearer": header
//     checks, the brand test, Authenticate, the principal and tenant put
//     in the context, r.WithContext, the next handler called.
//
// It reports each side's ns and allocations per call and the median
// per-round ratios to bare.
//
//	cd bench && go test -run '^$' -bench BenchmarkAPIKeyAuth -count 6
func BenchmarkAPIKeyAuth(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	if err := tenancy.Migrate(ctx, db.Owner); err != nil {
		b.Fatal(err)
	}
	if err := migrate.Grant(ctx, db.Owner, migrate.DefaultSchema, pgtest.AppRole, pgtest.SystemRole); err != nil {
		b.Fatal(err)
	}
	keys, err := tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{CacheTTL: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	tctx, err := tenancy.WithTenant(ctx, jwtTenant)
	if err != nil {
		b.Fatal(err)
	}
	issued, err := keys.Create(tctx, tenancy.NewAPIKey{Name: "bench", Scopes: []string{"deals:read", "deals:write"}})
	if err != nil {
		b.Fatal(err)
	}
	p, err := keys.Authenticate(ctx, issued.Key) // warms the cache
	if err != nil {
		b.Fatal(err)
	}
	auth, err := tenancy.NewAuthenticator(tenancy.AuthConfig{APIKeys: keys, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.RWMutex
	table := map[[sha256.Size]byte]tenancy.Principal{sha256.Sum256([]byte(issued.Key)): p}
	key := issued.Key
	interleaveSides(b, 64, []benchSide{
		{"bare", func() error {
			sum := sha256.Sum256([]byte(key))
			mu.RLock()
			_, ok := table[sum]
			mu.RUnlock()
			if !ok {
				return errors.New("bare: no entry")
			}
			return nil
		}},
		{"authenticate", func() error {
			_, err := keys.Authenticate(ctx, key)
			return err
		}},
		{"middleware", serveOK(auth.Handler, "Authorization", "Bearer "+key)},
	})
}
