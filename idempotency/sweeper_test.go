package idempotency_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// expireFilled writes n completed entries of tenantA and tenantB, named
// prefix-1 … prefix-n, that expired an hour ago.
func expireFilled(t *testing.T, b *bundle, prefix string, n int) {
	t.Helper()
	_, err := b.db.Admin.Exec(context.Background(), `
		INSERT INTO platform.idempotency_keys
		    (tenant_id, key, fingerprint, state, response_status, response_headers, response_body,
		     body_omitted, created_at, completed_at, expires_at)
		SELECT (ARRAY[$1, $2])[1 + i % 2]::uuid, $3 || '-' || i, sha256(i::text::bytea), 'completed', 200,
		       '{}', '', false, t - interval '1 day', t - interval '1 day', t
		FROM generate_series(1, $4::int) AS i, (SELECT now() - interval '1 hour' AS t) n`,
		tenantA, tenantB, prefix, n)
	require.NoError(t, err)
}

// A paced sweeper deletes every expired entry, as one without a pause
// does, and leaves the unexpired ones.
func TestSweeperBatchPauseDeletesEveryExpiredEntry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expireFilled(t, b, "old", 11)
	_, err := b.store.Claim(tenantCtx(t, tenantA), "young", fpOf("a"))
	require.NoError(t, err)

	paced, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchSize: 3, BatchPause: time.Millisecond})
	require.NoError(t, err)
	n, err := paced.SweepOnce(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 11, n, "four batches of up to three, three pauses")
	require.Equal(t, 1, countKeys(t, b.db))
	_, err = b.store.Lookup(tenantCtx(t, tenantA), "young")
	require.NoError(t, err)
}

// A context that ends during the pause stops SweepOnce at once with the
// context's error and the count so far, and Run with it: neither waits
// out the pause.
func TestSweeperBatchPauseStopsWithTheContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	expireFilled(t, b, "old", 5)
	batches := &batchSignal{Execer: b.db.System, done: make(chan struct{}, 16)}
	long, err := idempotency.NewSweeper(batches, idempotency.SweeperConfig{
		BatchSize: 2, BatchPause: time.Hour, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		n   int64
		err error
	}
	once := make(chan result, 1)
	go func() {
		n, err := long.SweepOnce(ctx)
		once <- result{n, err}
	}()
	// The first batch runs at once; the sweep then waits an hour. The
	// context ends once that batch has returned: ended during the
	// statement, it could cancel a delete the server had already made.
	batches.await(t)
	require.Equal(t, 3, countKeys(t, b.db))
	cancel()
	select {
	case r := <-once:
		require.ErrorIs(t, r.err, context.Canceled)
		require.EqualValues(t, 2, r.n, "the first batch only")
	case <-time.After(30 * time.Second):
		t.Fatal("SweepOnce waited out its pause after the context ended")
	}
	require.Equal(t, 3, countKeys(t, b.db))

	ctx, cancel = context.WithCancel(context.Background())
	run := make(chan error, 1)
	go func() { run <- long.Run(ctx) }()
	require.Eventually(t, func() bool { return countKeys(t, b.db) == 1 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-run:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("Run waited out its pause after the context ended")
	}
	require.Equal(t, 1, countKeys(t, b.db), "no batch after the context ended")
}

// NoBatchPause sweeps without pausing, as the zero value asks for the
// default pause; any other negative pause is a mistake.
func TestSweeperBatchPauseMustNotBeNegative(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchPause: -time.Millisecond})
	require.ErrorIs(t, err, idempotency.ErrInvalidConfig)

	expireFilled(t, b, "old", 5)
	unpaced, err := idempotency.NewSweeper(b.db.System, idempotency.SweeperConfig{BatchSize: 2, BatchPause: idempotency.NoBatchPause})
	require.NoError(t, err)
	n, err := unpaced.SweepOnce(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	require.Zero(t, countKeys(t, b.db))
}

// batchSignal is the sweeper's database, reporting each batch once its
// result has been read.
type batchSignal struct {
	idempotency.Execer
	done chan struct{}
}

// QueryRow implements idempotency.Execer.
func (b *batchSignal) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return signalledRow{Row: b.Execer.QueryRow(ctx, sql, args...), done: b.done}
}

type signalledRow struct {
	pgx.Row
	done chan struct{}
}

// Scan implements pgx.Row.
func (r signalledRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	r.done <- struct{}{}
	return err
}

// await waits for the next batch to return.
func (b *batchSignal) await(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no sweep batch returned within 30s")
	}
}
