package idempotency_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

const (
	tenantA = "11111111-1111-4111-8111-111111111111"
	tenantB = "22222222-2222-4222-8222-222222222222"
	// tenantHeader carries the tenant in these tests, standing in for the
	// authentication middleware that puts it in the context.
	tenantHeader = "X-Test-Tenant"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(idempotency.Migrate))
}

// bundle is what most tests need.
type bundle struct {
	db    *pgtest.DB
	store *idempotency.Store
}

func setup(t *testing.T) *bundle {
	t.Helper()
	db := pgtest.New(t)
	createOrders(t, db)
	store, err := idempotency.NewStore(db.App, idempotency.StoreConfig{TTL: time.Hour, Lease: time.Minute})
	require.NoError(t, err)
	return &bundle{db: db, store: store}
}

// age moves the times of tenant's entry of key d into the past, as if d
// had passed on the database's clock, which leases and expiry follow: a
// test cannot move that clock, so it moves the entry instead, and no test
// waits for time to pass.
func (b *bundle) age(t testing.TB, tenant, key string, d time.Duration) {
	t.Helper()
	tag, err := b.db.System.Exec(context.Background(), `
		UPDATE platform.idempotency_keys
		SET created_at = created_at - $3::interval, lease_until = lease_until - $3::interval,
		    completed_at = completed_at - $3::interval, expires_at = expires_at - $3::interval
		WHERE tenant_id = $1 AND key = $2`, tenant, key, d)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "no entry %q to age", key)
}

// createOrders creates the business table the test handlers write to.
func createOrders(t testing.TB, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Owner.Exec(ctx, `CREATE TABLE platform.test_orders (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		tenant_id uuid NOT NULL, body text NOT NULL)`)
	require.NoError(t, err)
	_, err = db.Owner.Exec(ctx, "GRANT SELECT, INSERT ON platform.test_orders TO "+pgtest.AppRole+", "+pgtest.SystemRole)
	require.NoError(t, err)
}

func countOrders(t testing.TB, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM platform.test_orders").Scan(&n))
	return n
}

func countKeys(t testing.TB, db *pgtest.DB) int {
	t.Helper()
	var n int
	require.NoError(t, db.System.QueryRow(context.Background(), "SELECT count(*) FROM platform.idempotency_keys").Scan(&n))
	return n
}

func tenantCtx(t testing.TB, tenant string) context.Context {
	t.Helper()
	ctx, err := tenancy.WithTenant(context.Background(), tenant)
	require.NoError(t, err)
	return ctx
}

// withTenant puts the tenant named by the test header in the context, as
// an authentication middleware would.
func withTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tenant := r.Header.Get(tenantHeader); tenant != "" {
			ctx, err := tenancy.WithTenant(r.Context(), tenant)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// createOrder inserts the request body as an order in its own tenant
// transaction (tenancy.InTx, as an application would) and answers 201: the
// handler of the benchmark's baseline and of claim mode.
func createOrder(pool *pgxpool.Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tenant, _ := tenancy.TenantFrom(r.Context())
		var id int64
		err := tenancy.InTx(r.Context(), pool, func(tx pgx.Tx) error {
			return tx.QueryRow(r.Context(),
				"INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, $2) RETURNING id", tenant, string(body)).Scan(&id)
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCreated(w, id)
	})
}

func writeCreated(w http.ResponseWriter, id int64) {
	loc := "/orders/" + itoa(id)
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Set-Cookie", "session=per-response")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"id":`+itoa(id)+`}`)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// server serves h behind the idempotency middleware built from cfg and
// the test tenant middleware.
func (b *bundle) server(t *testing.T, cfg idempotency.Config, h http.Handler) *httptest.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	mw, err := idempotency.NewMiddleware(b.store, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(withTenant(mw.Handler(h)))
	t.Cleanup(srv.Close)
	return srv
}

// result is a response read whole.
type result struct {
	status int
	header http.Header
	body   string
}

// do sends a request with a tenant and key (both optional) and reads the
// whole response.
func do(t testing.TB, client *http.Client, method, url, tenant, key, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tenant != "" {
		req.Header.Set(tenantHeader, tenant)
	}
	if key != "" {
		req.Header.Set(idempotency.HeaderName, key)
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: string(data)}
}
