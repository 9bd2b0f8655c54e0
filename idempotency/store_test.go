package idempotency_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/rls"
)

func fpOf(body string) idempotency.Fingerprint {
	return idempotency.FingerprintRequest(http.MethodPost, "/orders", "application/json", []byte(body))
}

func TestClaimCompleteAndReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)

	claim, err := b.store.Claim(ctx, "k1", fpOf("a"))
	require.NoError(t, err)
	require.NotEmpty(t, claim.Token)
	require.Nil(t, claim.Completed)
	claimed, err := b.store.Lookup(ctx, "k1")
	require.NoError(t, err)
	require.True(t, claimed.LeaseUntil.Equal(claim.LeaseUntil))
	require.Equal(t, time.Minute, claimed.LeaseUntil.Sub(claimed.CreatedAt), "the lease runs from the claim's database time")

	_, err = b.store.Claim(ctx, "k1", fpOf("a"))
	var inProgress *idempotency.InProgressError
	require.ErrorAs(t, err, &inProgress)
	require.ErrorIs(t, err, idempotency.ErrInProgress)
	require.True(t, inProgress.LeaseUntil.Equal(claim.LeaseUntil))

	resp := idempotency.Response{Status: 201, Header: http.Header{"Location": {"/orders/1"}}, Body: []byte(`{"id":1}`)}
	require.NoError(t, b.store.Complete(ctx, "k1", claim.Token, resp))
	require.ErrorIs(t, b.store.Complete(ctx, "k1", claim.Token, resp), idempotency.ErrClaimLost)

	again, err := b.store.Claim(ctx, "k1", fpOf("a"))
	require.NoError(t, err)
	require.Empty(t, again.Token)
	require.Equal(t, &resp, again.Completed)

	entry, err := b.store.Lookup(ctx, "k1")
	require.NoError(t, err)
	require.Equal(t, idempotency.StateCompleted, entry.State)
	require.Equal(t, fpOf("a"), entry.Fingerprint)
	require.Equal(t, tenantA, entry.TenantID)
	require.Equal(t, time.Hour, entry.ExpiresAt.Sub(entry.CreatedAt))
	require.True(t, entry.CreatedAt.Equal(claimed.CreatedAt))
}

func TestEmptyBodyIsStoredAndReplayedEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf(""))
	require.NoError(t, err)
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 204}))
	again, err := b.store.Claim(ctx, "k", fpOf(""))
	require.NoError(t, err)
	require.Equal(t, 204, again.Completed.Status)
	require.Empty(t, again.Completed.Body)
	require.False(t, again.Completed.BodyOmitted)
}

func TestClaimWithDifferentFingerprintIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)

	_, err = b.store.Claim(ctx, "k", fpOf("b"))
	require.ErrorIs(t, err, idempotency.ErrFingerprintMismatch, "while in progress")

	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 200}))
	_, err = b.store.Claim(ctx, "k", fpOf("b"))
	require.ErrorIs(t, err, idempotency.ErrFingerprintMismatch, "once completed")

	b.age(t, tenantA, "k", 2*time.Minute) // past the lease: still a different request
	_, err = b.store.Claim(ctx, "k", fpOf("b"))
	require.ErrorIs(t, err, idempotency.ErrFingerprintMismatch)
}

func TestSameKeyInTwoTenantsIsIndependent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctxA, ctxB := tenantCtx(t, tenantA), tenantCtx(t, tenantB)
	claimA, err := b.store.Claim(ctxA, "shared", fpOf("a"))
	require.NoError(t, err)
	claimB, err := b.store.Claim(ctxB, "shared", fpOf("b")) // another tenant, another request
	require.NoError(t, err)
	require.NotEmpty(t, claimB.Token)

	require.NoError(t, b.store.Complete(ctxA, "shared", claimA.Token, idempotency.Response{Status: 201, Body: []byte("A")}))
	_, err = b.store.Lookup(ctxB, "shared")
	require.NoError(t, err)
	entryB, err := b.store.Lookup(ctxB, "shared")
	require.NoError(t, err)
	require.Equal(t, idempotency.StateInProgress, entryB.State, "tenant A's completion does not touch tenant B's entry")
	require.ErrorIs(t, b.store.Complete(ctxB, "shared", claimA.Token, idempotency.Response{Status: 200}), idempotency.ErrClaimLost,
		"tenant A's token is worthless under tenant B")
}

func TestExpiredLeaseCanBeClaimedAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	dead, err := b.store.Claim(ctx, "k", fpOf("a")) // its holder never comes back
	require.NoError(t, err)

	b.age(t, tenantA, "k", 50*time.Second)
	_, err = b.store.Claim(ctx, "k", fpOf("a"))
	require.ErrorIs(t, err, idempotency.ErrInProgress, "the lease has not run out yet")

	b.age(t, tenantA, "k", 10*time.Second)
	taken, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	require.NotEmpty(t, taken.Token)
	require.NotEqual(t, dead.Token, taken.Token)

	require.ErrorIs(t, b.store.Complete(ctx, "k", dead.Token, idempotency.Response{Status: 200}), idempotency.ErrClaimLost)
	require.ErrorIs(t, b.store.Release(ctx, "k", dead.Token), idempotency.ErrClaimLost)
	require.NoError(t, b.store.Complete(ctx, "k", taken.Token, idempotency.Response{Status: 200}))
}

func TestExpiredEntryIsForgotten(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 200}))

	b.age(t, tenantA, "k", time.Hour)
	_, err = b.store.Lookup(ctx, "k")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
	fresh, err := b.store.Claim(ctx, "k", fpOf("other request"))
	require.NoError(t, err, "after the TTL the key is free for any request")
	require.NotEmpty(t, fresh.Token)
}

func TestReleaseFreesTheKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	require.ErrorIs(t, b.store.Release(ctx, "k", "not-a-token"), idempotency.ErrClaimLost)
	require.ErrorIs(t, b.store.Release(ctx, "k", "00000000-0000-4000-8000-000000000000"), idempotency.ErrClaimLost)
	require.NoError(t, b.store.Release(ctx, "k", claim.Token))
	_, err = b.store.Lookup(ctx, "k")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
	next, err := b.store.Claim(ctx, "k", fpOf("b"))
	require.NoError(t, err)
	require.NotEmpty(t, next.Token)
}

func TestStoreRefusesMissingTenantAndBadKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bare := context.Background()
	_, err := b.store.Claim(bare, "k", fpOf("a"))
	require.ErrorIs(t, err, idempotency.ErrNoTenant)
	_, err = b.store.Lookup(bare, "k")
	require.ErrorIs(t, err, idempotency.ErrNoTenant)
	require.ErrorIs(t, b.store.Complete(bare, "k", "t", idempotency.Response{Status: 200}), idempotency.ErrNoTenant)
	require.ErrorIs(t, b.store.Release(bare, "k", "t"), idempotency.ErrNoTenant)

	ctx := tenantCtx(t, tenantA)
	for _, key := range []string{"", string(make([]byte, 256)), "a\nb", "caf\u00e9"} {
		_, err := b.store.Claim(ctx, key, fpOf("a"))
		require.ErrorIs(t, err, idempotency.ErrInvalidKey, "%q", key)
	}
	require.Equal(t, 0, countKeys(t, b.db))
}

// The table leaves these rules to the store (see migration 002), so a
// completion it refuses must write nothing.
func TestCompleteRefusesANonHTTPStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	claim, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)
	for _, status := range []int{0, 99, 1000} {
		err := b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: status})
		require.Error(t, err, "status %d", status)
	}
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, idempotency.StateInProgress, entry.State)
	require.NoError(t, b.store.Complete(ctx, "k", claim.Token, idempotency.Response{Status: 201}))
}

func TestConcurrentClaimsGrantOneToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	const n = 40
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		tokens   int
		conflict int
	)
	for range n {
		wg.Go(func() {
			claim, err := b.store.Claim(ctx, "race", fpOf("a"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && claim.Token != "":
				tokens++
			case errors.Is(err, idempotency.ErrInProgress):
				conflict++
			default:
				t.Errorf("unexpected claim result %+v, %v", claim, err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, 1, tokens)
	require.Equal(t, n-1, conflict)
}

func TestTxVariantsCommitWithTheCallersWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	write := func(fail bool) error {
		return rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
			claim, err := b.store.ClaimTx(ctx, tx, "k", fpOf("a"))
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'x')", tenantA); err != nil {
				return err
			}
			if err := b.store.CompleteTx(ctx, tx, "k", claim.Token, idempotency.Response{Status: 201}); err != nil {
				return err
			}
			entry, err := b.store.LookupTx(ctx, tx, "k")
			if err != nil || entry.State != idempotency.StateCompleted {
				return errors.New("completed entry not visible in its own transaction")
			}
			if fail {
				return errors.New("business rule failed")
			}
			return nil
		})
	}
	require.Error(t, write(true))
	require.Equal(t, 0, countOrders(t, b.db.System))
	require.Equal(t, 0, countKeys(t, b.db))

	require.NoError(t, write(false))
	require.Equal(t, 1, countOrders(t, b.db.System))
	entry, err := b.store.Lookup(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 201, entry.Response.Status)

	// ReleaseTx rolls back with its transaction too.
	err = rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
		claim, err := b.store.ClaimTx(ctx, tx, "r", fpOf("a"))
		if err != nil {
			return err
		}
		return b.store.ReleaseTx(ctx, tx, "r", claim.Token)
	})
	require.NoError(t, err)
	_, err = b.store.Lookup(ctx, "r")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
}

func TestClaimTxConflictsAtOnceWithAnUncommittedClaim(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	holder, err := b.db.App.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	require.NoError(t, rls.SetTenant(ctx, holder, tenantA))
	_, err = b.store.ClaimTx(ctx, holder, "k", fpOf("a"))
	require.NoError(t, err)

	// Without the advisory lock this would wait for holder to finish.
	err = rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
		_, err := b.store.ClaimTx(ctx, tx, "k", fpOf("a"))
		return err
	})
	require.ErrorIs(t, err, idempotency.ErrInProgress)
}

func TestRowLevelSecurityScopesEntries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	_, err := b.store.Claim(ctx, "k", fpOf("a"))
	require.NoError(t, err)

	var visible int
	require.NoError(t, b.db.App.QueryRow(context.Background(),
		"SELECT count(*) FROM platform.idempotency_keys").Scan(&visible))
	require.Equal(t, 0, visible, "the app role sees nothing without a tenant")
	err = rls.InTx(ctx, b.db.App, tenantB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM platform.idempotency_keys").Scan(&visible)
	})
	require.NoError(t, err)
	require.Equal(t, 0, visible, "tenant B does not see tenant A's key")
	require.Equal(t, 1, countKeys(t, b.db))
}

func TestStoreConfigIsValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, cfg := range map[string]idempotency.StoreConfig{
		"negative TTL":          {TTL: -time.Second},
		"negative lease":        {Lease: -time.Second},
		"lease longer than TTL": {TTL: time.Minute, Lease: time.Hour},
	} {
		_, err := idempotency.NewStore(b.db.App, cfg)
		require.ErrorIs(t, err, idempotency.ErrInvalidConfig, name)
	}
	_, err := idempotency.NewStore(nil, idempotency.StoreConfig{})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
	_, err = idempotency.NewMiddleware(b.store, idempotency.Config{MaxBodyBytes: -1})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
	_, err = idempotency.NewMiddleware(b.store, idempotency.Config{Methods: []string{}})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
	_, err = idempotency.NewMiddleware(nil, idempotency.Config{})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
	_, err = idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchSize: -1})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)
}
