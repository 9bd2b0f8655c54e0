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
