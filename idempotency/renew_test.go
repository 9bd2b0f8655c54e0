package idempotency_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/rls"
)

func TestRenewExtendsTheLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)

	b.clock.Advance(50 * time.Second)
	until, err := b.store.Renew(ctx, "k", claim.Token)
	require.NoError(t, err)
	require.Equal(t, b.clock.Now().Add(time.Minute), until)
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err)
	require.True(t, entry.LeaseUntil.Equal(until))

	b.clock.Advance(30 * time.Second) // past the first lease, within the renewed one
	_, err = b.store.Claim(ctx, "k", fpOf("a"))
	require.ErrorIs(t, err, idempotency.ErrInProgress, "a renewed claim is not taken over")

	_, err = b.store.Renew(ctx, "k", "8e03978e-40d5-43e8-bc93-6894a57f9324")
	require.ErrorIs(t, err, idempotency.ErrClaimLost)
	_, err = b.store.Renew(ctx, "k", "not-a-token")
	require.ErrorIs(t, err, idempotency.ErrClaimLost)
	_, err = b.store.Renew(ctx, "other", claim.Token)
	require.ErrorIs(t, err, idempotency.ErrClaimLost)

	require.NoError(t, rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
		_, err := b.store.RenewTx(ctx, tx, "k", claim.Token)
		return err
	}))
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 200}))
	_, err = b.store.Renew(ctx, "k", claim.Token)
	require.ErrorIs(t, err, idempotency.ErrClaimLost, "a completed key has no lease to renew")
}

// A handler slower than the lease keeps its claim: the middleware renews
// it while the handler runs, so a retry gets 409 instead of running the
// operation a second time.
func TestSlowHandlerKeepsItsClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	release := make(chan struct{})
	var runs atomic.Int32
	inner := createOrder(b.db.App)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		<-release
		inner.ServeHTTP(w, r)
	})
	srv := b.server(t, idempotency.Config{LeaseRenewal: 5 * time.Millisecond}, h)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // runs before the server's Close, which waits for the handler
	body := `{"sku":"slow"}`
	first := make(chan result, 1)
	go func() { first <- do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body) }()

	ctx := tenantCtx(t, tenantA)
	start := b.clock.Now()
	require.Eventually(t, func() bool {
		_, err := b.store.Lookup(ctx, "k")
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the first request claims the key")
	b.clock.Advance(50 * time.Second)
	require.Eventually(t, func() bool {
		entry, err := b.store.Lookup(ctx, "k")
		return err == nil && entry.LeaseUntil.Equal(start.Add(50*time.Second+time.Minute))
	}, 10*time.Second, 5*time.Millisecond, "the lease is renewed from the clock's time")
	b.clock.Advance(30 * time.Second)

	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body), http.StatusConflict)
	unblock()
	require.Equal(t, http.StatusCreated, (<-first).status)
	again := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body)
	require.Equal(t, "true", again.header.Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 1, runs.Load())
	require.Equal(t, 1, countOrders(t, b.db.System))
}

func TestLeaseRenewalIsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, renewal := range []time.Duration{-time.Second, time.Minute, time.Hour} {
		_, err := idempotency.NewMiddleware(b.store, idempotency.Config{LeaseRenewal: renewal})
		require.ErrorIs(t, err, idempotency.ErrInvalidConfig, renewal)
	}
}
