package idempotency_test

import (
	"context"
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

	b.age(t, tenantA, "k", 50*time.Second)
	until, err := b.store.Renew(ctx, "k", claim.Token)
	require.NoError(t, err)
	require.True(t, until.After(claim.LeaseUntil), "a minute from the renewal, not from the claim")
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err)
	require.True(t, entry.LeaseUntil.Equal(until))

	b.age(t, tenantA, "k", 30*time.Second) // past the first lease, within the renewed one
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

// outliveTheTTL claims k and keeps renewing it while the entry's TTL (an
// hour) runs out under it: after it, the holder's lease is live and the
// TTL from the claim has passed by 15 seconds.
func outliveTheTTL(t *testing.T, b *bundle, ctx context.Context) idempotency.Claim {
	t.Helper()
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	b.age(t, tenantA, "k", time.Hour-30*time.Second) // 30 s of TTL left
	_, err = b.store.Renew(ctx, "k", claim.Token)    // the lease now ends after the TTL
	require.NoError(t, err)
	b.age(t, tenantA, "k", 45*time.Second) // the TTL from the claim has passed
	var live bool
	require.NoError(t, b.db.System.QueryRow(context.Background(),
		"SELECT lease_until > now() AND created_at + interval '1 hour' < now() FROM platform.idempotency_keys WHERE key = 'k'").Scan(&live))
	require.True(t, live, "the setup: a live lease on an entry older than its TTL")
	return claim
}

// A holder that runs longer than the TTL and renews its lease keeps its
// key: a request with another fingerprint is refused, not handed the key.
func TestRenewedClaimIsNotTakenOverPastTheTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim := outliveTheTTL(t, b, ctx)

	_, err := b.store.Claim(ctx, "k", fpOf("another request"))
	require.ErrorIs(t, err, idempotency.ErrFingerprintMismatch)
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err, "the entry has not expired under its holder")
	require.True(t, !entry.ExpiresAt.Before(entry.LeaseUntil))
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 201}))
}

// … nor is it swept while its holder runs.
func TestRenewedClaimIsNotSweptPastTheTTL(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim := outliveTheTTL(t, b, ctx)

	sweeper, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{})
	require.NoError(t, err)
	n, err := sweeper.SweepOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 201}))
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
	require.Eventually(t, func() bool {
		_, err := b.store.Lookup(ctx, "k")
		return err == nil
	}, 10*time.Second, 5*time.Millisecond, "the first request claims the key")
	b.age(t, tenantA, "k", 2*time.Minute) // the lease it was claimed with has run out
	require.Eventually(t, func() bool {
		var live bool
		err := b.db.System.QueryRow(context.Background(),
			"SELECT lease_until > now() FROM platform.idempotency_keys WHERE key = 'k'").Scan(&live)
		return err == nil && live
	}, 10*time.Second, 5*time.Millisecond, "the lease is renewed from the database's time")

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
