package idempotency_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

// A first request in transactional mode costs the database round trips of
// the bare handler in its own tenancy.InTx transaction, three: BEGIN, the
// tenant, the key's lock and lookup in one; the handler's insert; the
// stored response with the COMMIT. A pgx tracer names what each carries,
// and the connection counts the turns (a write after a read) the wire saw.
func TestTransactionalRequestCostsTheBareHandlersRoundTrips(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createOrders(t, db)
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 1 // one connection, warmed up below: its statements are prepared
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	tracer := &roundTripTracer{}
	cfg.ConnConfig.Tracer = tracer
	var turns atomic.Int64
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &turnCounter{Conn: c, turns: &turns}, nil
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
	require.NoError(t, err)
	mw, err := idempotency.NewMiddleware(store, idempotency.Config{Logger: slog.New(slog.DiscardHandler), Transactional: true})
	require.NoError(t, err)
	tx := httptest.NewServer(withTenant(mw.Handler(createOrderInTx())))
	t.Cleanup(tx.Close)
	bare := httptest.NewServer(withTenant(createOrder(pool)))
	t.Cleanup(bare.Close)

	seq := 0
	measure := func(url string, key bool) (int64, []string) {
		seq++
		k := ""
		if key {
			k = "rt-" + strconv.Itoa(seq)
		}
		require.Equal(t, http.StatusCreated, do(t, http.DefaultClient, http.MethodPost, url, tenantA, k, "{}").status)
		// Warmed up: the same request shape again, counted.
		seq++
		if key {
			k = "rt-" + strconv.Itoa(seq)
		}
		tracer.reset()
		before := turns.Load()
		require.Equal(t, http.StatusCreated, do(t, http.DefaultClient, http.MethodPost, url, tenantA, k, "{}").status)
		return turns.Load() - before, tracer.reset()
	}
	bareTurns, bareTrips := measure(bare.URL, false)
	txTurns, txTrips := measure(tx.URL, true)
	t.Logf("bare handler: %q; transactional mode: %q", bareTrips, txTrips)
	require.Len(t, bareTrips, 3, "the bare handler: %q", bareTrips)
	require.EqualValues(t, 3, bareTurns)
	require.Len(t, txTrips, 3, "transactional mode: %q", txTrips)
	require.EqualValues(t, 3, txTurns)
	require.Equal(t, 4, countOrders(t, pool), "each server inserted its two orders")
}

// roundTripTracer records one entry per query or batch a connection sends
// (each one round trip once its statements are prepared), and any prepare.
type roundTripTracer struct {
	mu    sync.Mutex
	trips []string
}

func (t *roundTripTracer) add(s string) {
	t.mu.Lock()
	t.trips = append(t.trips, s)
	t.mu.Unlock()
}

func (t *roundTripTracer) reset() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	trips := t.trips
	t.trips = nil
	return trips
}

func (t *roundTripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	t.add("query: " + data.SQL)
	return ctx
}

func (t *roundTripTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *roundTripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	t.add("batch of " + strconv.Itoa(data.Batch.Len()))
	return ctx
}

func (t *roundTripTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t *roundTripTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (t *roundTripTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, data pgx.TracePrepareStartData) context.Context {
	t.add("prepare: " + data.SQL)
	return ctx
}

func (t *roundTripTracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// turnCounter counts the times the client writes after having read: one
// per round trip, however many writes and reads each takes.
type turnCounter struct {
	net.Conn
	turns *atomic.Int64
	read  atomic.Bool
}

func (c *turnCounter) Write(p []byte) (int, error) {
	if c.read.Swap(false) {
		c.turns.Add(1)
	}
	return c.Conn.Write(p)
}

func (c *turnCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.read.Store(true)
	}
	return n, err
}

// A …Tx call of another package given the request's transaction checks its
// tenant (rls.CheckTx) without asking the server: the middleware scoped the
// transaction itself and says to which tenant. Once the transaction has
// ended the check asks, and fails as the transaction does.
func TestRequestTransactionNamesItsTenantWithoutARoundTrip(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createOrders(t, db)
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	tracer := &roundTripTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
	require.NoError(t, err)
	b := &bundle{db: db, store: store}

	var (
		kept          pgx.Tx
		tenant        string
		checkErr      error
		tripsForCheck []string
	)
	srv := b.server(t, idempotency.Config{Transactional: true}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		kept = tx
		tracer.reset()
		tenant, checkErr = rls.CheckTx(r.Context(), tx)
		tripsForCheck = tracer.reset()
		w.WriteHeader(http.StatusCreated)
	}))
	require.Equal(t, http.StatusCreated, do(t, http.DefaultClient, http.MethodPost, srv.URL, tenantA, "scoped-1", "{}").status)
	require.NoError(t, checkErr)
	require.Equal(t, tenantA, tenant)
	require.Empty(t, tripsForCheck, "the check sent statements")

	_, err = rls.CheckTx(context.Background(), kept)
	require.ErrorIs(t, err, pgx.ErrTxClosed, "the ended transaction's check")
}

// A handler that re-scopes the request's transaction behind the
// middleware's back cannot use the remembered tenant to write across
// tenants: the policy compares tenant_id with the setting, and refuses the
// row.
func TestRememberedTenantCannotWriteAfterTheHandlerReScopes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.db.Owner.Exec(context.Background(), `
		ALTER TABLE platform.test_orders ENABLE ROW LEVEL SECURITY;
		ALTER TABLE platform.test_orders FORCE ROW LEVEL SECURITY;
		CREATE POLICY tenant ON platform.test_orders
		    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
		    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)`)
	require.NoError(t, err)
	var insertErr error
	srv := b.server(t, idempotency.Config{Transactional: true}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		_, err := tx.Exec(r.Context(), "SELECT set_config('app.tenant_id', $1, true)", tenantB)
		require.NoError(t, err)
		remembered, err := rls.CheckTx(r.Context(), tx)
		require.NoError(t, err)
		_, insertErr = tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, '{}')", remembered)
		w.WriteHeader(http.StatusCreated)
	}))
	do(t, http.DefaultClient, http.MethodPost, srv.URL, tenantA, "rescoped-1", "{}")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, insertErr, &pgErr)
	require.Equal(t, "42501", pgErr.Code, "row-level security refused the row")
	require.Zero(t, countOrders(t, b.db.System))
}
