package idempotency_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
)

func TestSweeperDeletesExpiredEntriesInBatches(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 7 {
		tenant := []string{tenantA, tenantB}[i%2]
		key := fmt.Sprintf("old-%d", i)
		claim, err := b.store.Claim(tenantCtx(t, tenant), key, fpOf("a"))
		require.NoError(t, err)
		if i%3 == 0 {
			require.NoError(t, b.store.Complete(tenantCtx(t, tenant), key, claim.Token, idempotency.Response{Status: 200}))
		}
		b.age(t, tenant, key, time.Hour) // they reach their TTL (1 hour)
	}
	_, err := b.store.Claim(tenantCtx(t, tenantA), "young", fpOf("a"))
	require.NoError(t, err)
	b.age(t, tenantA, "young", 59*time.Minute)

	appSweeper, err := idempotency.NewSweeper(b.db.App, idempotency.SweeperConfig{})
	require.NoError(t, err)
	n, err := appSweeper.SweepOnce(context.Background())
	require.NoError(t, err)
	require.Zero(t, n, "row-level security hides every row from the app role")

	sweeper, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchSize: 3})
	require.NoError(t, err)
	n, err = sweeper.SweepOnce(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	require.Equal(t, 1, countKeys(t, b.db))
	_, err = b.store.Lookup(tenantCtx(t, tenantA), "young")
	require.NoError(t, err)
}

func TestSweeperRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.store.Claim(tenantCtx(t, tenantA), "k", fpOf("a"))
	require.NoError(t, err)
	b.age(t, tenantA, "k", time.Hour)
	sweeper, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{
		Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sweeper.Run(ctx) }()
	// Run sweeps once at start; wait for the row to go, then stop it.
	require.Eventually(t, func() bool {
		var n int
		err := b.db.System.QueryRow(context.Background(), "SELECT count(*) FROM platform.idempotency_keys").Scan(&n)
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// Each batch starts at the latest expiry the one before deleted; entries
// that share that expiry across a batch boundary are deleted too, and an
// unexpired entry among them stays.
func TestSweeperBatchesResumeAtTheLastExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i := range 6 {
		key := fmt.Sprintf("same-%d", i)
		claim, err := b.store.Claim(tenantCtx(t, tenantA), key, fpOf("a"))
		require.NoError(t, err)
		require.NoError(t, b.store.Complete(tenantCtx(t, tenantA), key, claim.Token, idempotency.Response{Status: 201}))
	}
	_, err := b.store.Claim(tenantCtx(t, tenantB), "live", fpOf("a"))
	require.NoError(t, err)
	// Five entries expired at the same instant, one an hour earlier.
	_, err = b.db.System.Exec(context.Background(), `
		UPDATE platform.idempotency_keys
		SET created_at = now() - interval '2 days', completed_at = now() - interval '2 days',
		    expires_at = CASE WHEN key = 'same-0' THEN now() - interval '1 day 1 hour'
		                      ELSE now() - interval '1 day' END
		WHERE key LIKE 'same-%'`)
	require.NoError(t, err)

	sweeper, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchSize: 2})
	require.NoError(t, err)
	n, err := sweeper.SweepOnce(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 6, n)
	require.Equal(t, 1, countKeys(t, b.db))
	_, err = b.store.Lookup(tenantCtx(t, tenantB), "live")
	require.NoError(t, err, "the unexpired claim stays")
}
