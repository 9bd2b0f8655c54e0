package tenancy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// BenchmarkJWT compares the middleware, per request, with a bare
// golang-jwt parse of the same token under the same options.
func BenchmarkJWT(b *testing.B) {
	testKeys(b)
	for _, alg := range []struct {
		name   string
		method jwt.SigningMethod
		kid    string
		sign   any
		verify any
	}{
		{"HS256", jwt.SigningMethodHS256, "hs-1", hmacSecret, hmacSecret},
		{"ES256", jwt.SigningMethodES256, "ec-1", ecKey, &ecKey.PublicKey},
		{"RS256", jwt.SigningMethodRS256, "rsa-1", rsaKey, &rsaKey.PublicKey},
	} {
		token := sign(b, alg.method, alg.kid, alg.sign, validClaims())
		b.Run(alg.name+"/bare", func(b *testing.B) {
			parser := jwt.NewParser(jwt.WithValidMethods([]string{alg.method.Alg()}), jwt.WithIssuer(testIssuer),
				jwt.WithAudience(testAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
				jwt.WithLeeway(tenancy.DefaultLeeway), jwt.WithTimeFunc(testClock))
			keyfunc := func(*jwt.Token) (any, error) { return alg.verify, nil }
			b.ReportAllocs()
			for b.Loop() {
				claims := jwt.MapClaims{}
				if _, err := parser.ParseWithClaims(token, claims, keyfunc); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg.name+"/middleware", func(b *testing.B) {
			handler := newVerifier(b).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				handler.ServeHTTP(w, req)
			}
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		})
	}
}

// BenchmarkRLSTx compares one-row indexed selects:
//   - InTx/rls: tenancy.InTx and a select under row-level security;
//   - InTx/nested: the same select in an InTx nested in the caller's
//     scoped transaction (savepoint, scope check, release), the outer
//     transaction's BEGIN and COMMIT included;
//   - BeginFunc/explicit-where: pgx.BeginFunc with WHERE tenant_id = $1 on
//     the same data in a table without row-level security;
//   - InTx/plain: tenancy.InTx and the explicit-WHERE select on the table
//     without row-level security, isolating the cost of the policy.
func BenchmarkRLSTx(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	for _, stmt := range []string{
		"CREATE TABLE platform.bench_rls (tenant_id uuid NOT NULL, id int NOT NULL, val text NOT NULL, PRIMARY KEY (tenant_id, id))",
		"CREATE TABLE platform.bench_plain (tenant_id uuid NOT NULL, id int NOT NULL, val text NOT NULL, PRIMARY KEY (tenant_id, id))",
	} {
		_, err := db.Owner.Exec(ctx, stmt)
		require.NoError(b, err)
	}
	require.NoError(b, rlspolicy.Apply(ctx, db.Owner, "platform.bench_rls"))
	for _, table := range []string{"platform.bench_rls", "platform.bench_plain"} {
		grant(b, db.Owner, table)
		// Ten tenants of 1,000 rows, written by the system role (BYPASSRLS).
		_, err := db.System.Exec(ctx, fmt.Sprintf(`INSERT INTO %s
			SELECT ('6f1c1a8e-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, i, md5(i::text)
			FROM generate_series(0, 9) t, generate_series(1, 1000) i`, table))
		require.NoError(b, err)
		_, err = db.Owner.Exec(ctx, "ANALYZE "+table)
		require.NoError(b, err)
	}

	const tenant = "6f1c1a8e-0000-4000-8000-000000000003"
	tctx, err := tenancy.WithTenant(ctx, tenant)
	require.NoError(b, err)
	pool := db.App
	var val string
	selectRLS := func(tx pgx.Tx, id int) error {
		return tx.QueryRow(tctx, "SELECT val FROM platform.bench_rls WHERE id = $1", id).Scan(&val)
	}
	selectPlain := func(tx pgx.Tx, id int) error {
		return tx.QueryRow(tctx, "SELECT val FROM platform.bench_plain WHERE tenant_id = $1 AND id = $2", tenant, id).Scan(&val)
	}
	run := func(name string, fn func(id int) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if err := fn(i%1000 + 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("InTx/rls", func(id int) error {
		return tenancy.InTx(tctx, pool, func(tx pgx.Tx) error { return selectRLS(tx, id) })
	})
	run("InTx/nested", func(id int) error {
		return tenancy.InTx(tctx, pool, func(outer pgx.Tx) error {
			return tenancy.InTx(tctx, outer, func(tx pgx.Tx) error { return selectRLS(tx, id) })
		})
	})
	run("BeginFunc/explicit-where", func(id int) error {
		return pgx.BeginFunc(tctx, pool, func(tx pgx.Tx) error { return selectPlain(tx, id) })
	})
	run("InTx/plain", func(id int) error {
		return tenancy.InTx(tctx, pool, func(tx pgx.Tx) error { return selectPlain(tx, id) })
	})

	// Interleaved pairs: "ratio" is the second over the first.
	id := 0
	next := func() int { id++; return id%1000 + 1 }
	b.Run("ratio/InTx-rls-vs-BeginFunc-explicit", func(b *testing.B) {
		interleave(b, "beginfunc", func() error {
			return pgx.BeginFunc(tctx, pool, func(tx pgx.Tx) error { return selectPlain(tx, next()) })
		}, "intx", func() error {
			return tenancy.InTx(tctx, pool, func(tx pgx.Tx) error { return selectRLS(tx, next()) })
		})
	})
	b.Run("ratio/rls-vs-plain-in-InTx", func(b *testing.B) {
		interleave(b, "plain", func() error {
			return tenancy.InTx(tctx, pool, func(tx pgx.Tx) error { return selectPlain(tx, next()) })
		}, "rls", func() error {
			return tenancy.InTx(tctx, pool, func(tx pgx.Tx) error { return selectRLS(tx, next()) })
		})
	})
}

// interleave runs a and b alternately (swapping which goes first every
// iteration) and reports each one's mean time and their ratio b/a. On a
// shared, noisy machine this ratio is steadier than one computed from two
// separate benchmarks, since both sides see the same load.
func interleave(b *testing.B, nameA string, a func() error, nameB string, fn func() error) {
	b.Helper()
	var sumA, sumB time.Duration
	timed := func(f func() error, sum *time.Duration) {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		*sum += time.Since(start)
	}
	n := 0
	for b.Loop() {
		if n%2 == 0 {
			timed(a, &sumA)
			timed(fn, &sumB)
		} else {
			timed(fn, &sumB)
			timed(a, &sumA)
		}
		n++
	}
	b.ReportMetric(float64(sumA.Nanoseconds())/float64(n), nameA+"-ns/op")
	b.ReportMetric(float64(sumB.Nanoseconds())/float64(n), nameB+"-ns/op")
	b.ReportMetric(float64(sumB)/float64(sumA), "ratio")
}

// BenchmarkJWTRatio interleaves a bare parse and the middleware on the same
// HS256 token, one call each per iteration; "ratio" is middleware / bare
// over the summed times. bare: golang-jwt's ParseWithClaims into a new
// jwt.MapClaims with the verifier's options and a fixed key; middleware:
// JWTVerifier.Handler (five static keys, HS256 chosen by kid) around an
// empty handler. The published comparison, with a median per-round ratio,
// allocations per side and Verify alone, is bench/'s BenchmarkJWTAuth.
//
//	go test -run '^$' -bench BenchmarkJWTRatio -count 6 ./tenancy/
func BenchmarkJWTRatio(b *testing.B) {
	testKeys(b)
	token := sign(b, jwt.SigningMethodHS256, "hs-1", hmacSecret, validClaims())
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(testIssuer),
		jwt.WithAudience(testAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(tenancy.DefaultLeeway), jwt.WithTimeFunc(testClock))
	keyfunc := func(*jwt.Token) (any, error) { return hmacSecret, nil }
	handler := newVerifier(b).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	interleave(b, "bare", func() error {
		_, err := parser.ParseWithClaims(token, jwt.MapClaims{}, keyfunc)
		return err
	}, "middleware", func() error {
		handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			return fmt.Errorf("status %d", w.Code)
		}
		return nil
	})
}
