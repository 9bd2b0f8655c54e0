package idempotency_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

// The handler's transaction belongs to the middleware: Commit and Rollback
// are refused, savepoints work, and once the request is answered the
// transaction is closed to a handler that kept it.
func TestTransactionalHandlerCannotEndTheTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var kept atomic.Pointer[pgx.Tx]
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		kept.Store(&tx)
		insert := func(tx pgx.Tx) error {
			_, err := tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'x')", tenantA)
			return err
		}
		assert.NoError(t, insert(tx))
		assert.NoError(t, tenancy.InTx(r.Context(), tx, insert), "a nested transaction is a savepoint")
		assert.ErrorIs(t, tenancy.InTx(r.Context(), tx, func(tx pgx.Tx) error {
			assert.NoError(t, insert(tx))
			return context.Canceled // rolls back to the savepoint only
		}), context.Canceled)
		assert.ErrorIs(t, tx.Commit(r.Context()), idempotency.ErrManagedTx)
		assert.ErrorIs(t, tx.Rollback(r.Context()), idempotency.ErrManagedTx)
		w.WriteHeader(http.StatusCreated)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	require.Equal(t, 2, countOrders(t, b.db.System), "the two writes outside the rolled-back savepoint committed")
	require.Equal(t, 1, countKeys(t, b.db))

	leaked := *kept.Load()
	_, err := leaked.Exec(context.Background(), "SELECT 1")
	require.ErrorIs(t, err, pgx.ErrTxClosed)
	var one int
	require.ErrorIs(t, leaked.QueryRow(context.Background(), "SELECT 1").Scan(&one), pgx.ErrTxClosed)
	_, err = leaked.Begin(context.Background())
	require.ErrorIs(t, err, pgx.ErrTxClosed)
	require.Nil(t, leaked.Conn())
}

// Expired entries and a dead claim-mode holder's claim on the same request
// are taken over in transactional mode too.
func TestTransactionalTakesOverStaleEntries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{Transactional: true}, createOrderInTx())
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", `{"a":1}`).status)

	b.age(t, tenantA, "k", time.Hour) // the TTL
	res := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", `{"a":2}`)
	require.Equal(t, http.StatusCreated, res.status, "an expired key is free for any request")
	require.Empty(t, res.header.Get(idempotency.ReplayedHeader))
	require.Equal(t, 2, countOrders(t, b.db.System))
	require.Equal(t, 1, countKeys(t, b.db))

	body := `{"a":3}`
	_, err := b.store.Claim(tenantCtx(t, tenantA), "dead", fpOf(body)) // a holder that dies
	require.NoError(t, err)
	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "dead", body), http.StatusConflict)
	b.age(t, tenantA, "dead", time.Minute)
	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "dead", `{"other":1}`),
		http.StatusUnprocessableEntity)
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "dead", body).status)
	require.Equal(t, 3, countOrders(t, b.db.System))
	entry, err := b.store.Lookup(tenantCtx(t, tenantA), "dead")
	require.NoError(t, err)
	require.Equal(t, idempotency.StateCompleted, entry.State)
}

// A transactional request whose key is committed by another request while
// it runs (here a claim-mode claim, which takes no advisory lock) rolls its
// writes back and answers what the key's entry says.
func TestTransactionalRequestLosingTheKeyRollsBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"sku":"x"}`
	ctx := tenantCtx(t, tenantA)
	var rival idempotency.Claim
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var err error
		rival, err = b.store.Claim(ctx, "k", fpOf(body))
		assert.NoError(t, err, "the rival commits its claim while this request runs")
		createOrderInTx().ServeHTTP(w, r)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body), http.StatusConflict)
	require.Equal(t, 0, countOrders(t, b.db.System), "the losing request's write is rolled back")

	stored := idempotency.Response{Status: http.StatusAccepted, Header: http.Header{}, Body: []byte("rival")}
	require.NoError(t, b.store.Complete(ctx, "k", rival.Token, stored))
	res := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body)
	require.Equal(t, http.StatusAccepted, res.status)
	require.Equal(t, "rival", res.body)
	require.Equal(t, "true", res.header.Get(idempotency.ReplayedHeader))
}

// singleConnStore is a store on a pool of one connection of the app role,
// so every call of a test runs on the same server session.
func singleConnStore(t *testing.T, b *bundle) (*idempotency.Store, *pgxpool.Pool) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(b.db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{TTL: time.Hour, Lease: time.Minute})
	require.NoError(t, err)
	return store, pool
}

// The store's one-round-trip batches set the tenant for their own implicit
// transaction only, and transactional requests give their connection back:
// on a pool of one connection, the session sees no tenant and no rows
// afterwards, and request after request gets the connection.
func TestBatchesLeaveTheSessionClean(t *testing.T) {
	t.Parallel()
	b := setup(t)
	store, pool := singleConnStore(t, b)
	ctx := tenantCtx(t, tenantA)
	claim, err := store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	_, err = store.Renew(ctx, "k", claim.Token)
	require.NoError(t, err)
	require.NoError(t, store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 200}))
	_, err = store.Lookup(ctx, "k")
	require.NoError(t, err)

	mw, err := idempotency.NewMiddleware(store, idempotency.Config{Transactional: true})
	require.NoError(t, err)
	srv := newServer(t, withTenant(mw.Handler(createOrderInTx())))
	for _, key := range []string{"t1", "t2", "t1", "t3"} {
		res := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, key, "{}")
		require.Equal(t, http.StatusCreated, res.status, res.body)
	}

	var tenant *string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_setting('app.tenant_id', true)").Scan(&tenant))
	if tenant != nil {
		require.Empty(t, *tenant, "the tenant did not outlive its transaction")
	}
	var visible int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM platform.idempotency_keys").Scan(&visible))
	require.Zero(t, visible, "without a tenant the session sees no entries")
	require.Equal(t, 4, countKeys(t, b.db))
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// A transactional request and ClaimTx take the same advisory lock on a key,
// whichever comes first: while one holds it, the other is told the key is
// in progress at once, instead of running or waiting.
func TestTransactionalRequestAndClaimTxExcludeEachOther(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	const body = `{"sku":"x"}`

	t.Run("request holds the key", func(t *testing.T) {
		var claimErr error
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			claimErr = rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
				_, err := b.store.ClaimTx(ctx, tx, "held-by-request", fpOf(body))
				return err
			})
			createOrderInTx().ServeHTTP(w, r)
		})
		srv := b.server(t, idempotency.Config{Transactional: true}, h)
		res := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "held-by-request", body)
		require.Equal(t, http.StatusCreated, res.status, res.body)
		require.ErrorIs(t, claimErr, idempotency.ErrInProgress)
	})

	t.Run("ClaimTx holds the key", func(t *testing.T) {
		holder, err := b.db.App.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = holder.Rollback(ctx) }()
		require.NoError(t, rls.SetTenant(ctx, holder, tenantA))
		_, err = b.store.ClaimTx(ctx, holder, "held-by-claim", fpOf(body))
		require.NoError(t, err)

		var ran atomic.Bool
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ran.Store(true)
			createOrderInTx().ServeHTTP(w, r)
		})
		srv := b.server(t, idempotency.Config{Transactional: true}, h)
		res := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "held-by-claim", body)
		requireProblem(t, res, http.StatusConflict)
		require.False(t, ran.Load(), "the handler does not run while another transaction holds the key")
	})
}
