package idempotency_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// createOrderInTx inserts the order in the middleware's transaction.
func createOrderInTx() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, ok := idempotency.TxFrom(r.Context())
		if !ok {
			http.Error(w, "no transaction", http.StatusInternalServerError)
			return
		}
		body, _ := io.ReadAll(r.Body)
		tenant, _ := tenancy.TenantFrom(r.Context())
		var id int64
		err := tx.QueryRow(r.Context(),
			"INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, $2) RETURNING id", tenant, string(body)).Scan(&id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCreated(w, id)
	})
}

func TestTransactionalCommitsRowAndKeyTogether(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		createOrderInTx().ServeHTTP(w, r)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	first := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", `{"sku":"x"}`)
	require.Equal(t, http.StatusCreated, first.status, first.body)
	require.Equal(t, 1, countOrders(t, b.db.System))
	entry, err := b.store.Lookup(tenantCtx(t, tenantA), "k")
	require.NoError(t, err)
	require.Equal(t, idempotency.StateCompleted, entry.State)
	require.Equal(t, first.body, string(entry.Response.Body))

	again := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", `{"sku":"x"}`)
	require.Equal(t, first.body, again.body)
	require.Equal(t, "true", again.header.Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 1, runs.Load())
	require.Equal(t, 1, countOrders(t, b.db.System), "a replay writes no second row")

	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", `{"sku":"y"}`), http.StatusUnprocessableEntity)
}

func TestTransactionalFailureAfterTheWriteLeavesNeitherRowNorKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var fail atomic.Bool
	fail.Store(true)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		_, err := tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'x')", tenantA)
		assert.NoError(t, err)
		if fail.Load() {
			http.Error(w, "payment provider failed", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusBadGateway, res.status)
	require.Equal(t, 0, countOrders(t, b.db.System))
	require.Equal(t, 0, countKeys(t, b.db))

	fail.Store(false)
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	require.Equal(t, 1, countOrders(t, b.db.System))
	require.Equal(t, 1, countKeys(t, b.db))
}

// A handler that answers 4xx after a statement failed (the transaction is
// aborted) keeps its answer; nothing is committed.
func TestTransactionalRefusalAfterFailedStatementKeepsItsStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		_, err := tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, NULL)", tenantA)
		assert.Error(t, err)
		http.Error(w, "invalid order", http.StatusConflict)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusConflict, res.status)
	require.Equal(t, "invalid order\n", res.body)
	require.Equal(t, 0, countKeys(t, b.db))
}

// A handler that answers 2xx although its transaction cannot commit gets
// 503 instead: the client never sees a success whose effects were lost.
func TestTransactionalCommitFailureIs503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, _ := idempotency.TxFrom(r.Context())
		_, _ = tx.Exec(r.Context(), "SELECT 1/0")
		w.WriteHeader(http.StatusCreated)
	})
	srv := b.server(t, idempotency.Config{Transactional: true}, h)
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	requireProblem(t, res, http.StatusServiceUnavailable)
	require.NotEmpty(t, res.header.Get("Retry-After"), "a 503 says when to try again")
	require.Equal(t, 0, countKeys(t, b.db))
}

func TestTxFromOutsideTransactionalMode(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var had atomic.Bool
	srv := b.server(t, idempotency.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ok := idempotency.TxFrom(r.Context())
		had.Store(ok)
	}))
	require.Equal(t, http.StatusOK, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	require.False(t, had.Load())
}

// A transactional request that finds every connection of the pool taken
// waits AcquireTimeout for one, then answers 503 with Retry-After and
// stores nothing, rather than queueing for as long as the client waits.
func TestTransactionalRequestOnAnExhaustedPoolIs503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg, err := pgxpool.ParseConfig(b.db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.store, err = idempotency.NewStore(pool, idempotency.StoreConfig{AcquireTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	srv := b.server(t, idempotency.Config{Transactional: true}, createOrderInTx())

	held, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	requireProblem(t, res, http.StatusServiceUnavailable)
	require.NotEmpty(t, res.header.Get("Retry-After"))
	held.Release()

	// With the connection back the same key runs, once.
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	require.Equal(t, 1, countOrders(t, b.db.System))

	_, err = idempotency.NewStore(pool, idempotency.StoreConfig{AcquireTimeout: -time.Second})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
}
