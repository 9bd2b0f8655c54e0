package durable_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// insertFinished writes n completed runs of tenantA and tenantB, each with
// two checkpoints, named prefix-1 … prefix-n, finished age ago.
func insertFinished(t *testing.T, db *pgtest.DB, prefix string, n int, age time.Duration) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Admin.Exec(ctx, `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, output, attempt, created_at, updated_at, finished_at)
SELECT (ARRAY[$1, $2])[1 + i % 2]::uuid, $3 || '-' || i, 'greet', 'completed', '1', '1', 1, t, t, t
FROM generate_series(1, $4::int) AS i, (SELECT now() - $5::bigint * interval '1 microsecond' AS t) n`,
		tenantA, tenantB, prefix, n, age.Microseconds())
	require.NoError(t, err)
	_, err = db.Admin.Exec(ctx, `
INSERT INTO platform.durable_steps (tenant_id, run_id, seq, kind, name, status, output, attempts, created_at)
SELECT r.tenant_id, r.id, s, 'step', 'step-' || s, 'completed', '1', 1, r.created_at
FROM platform.durable_runs r, generate_series(1, 2) AS s WHERE r.id LIKE $1 || '-%'`, prefix)
	require.NoError(t, err)
}

// countAll counts the rows of a durable table across tenants.
func countAll(t *testing.T, db *pgtest.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Admin.QueryRow(context.Background(), "SELECT count(*) FROM platform."+table).Scan(&n))
	return n
}

// A paced sweeper deletes everything a sweep without a pause deletes, in
// the same batches: the expired runs of every tenant with their
// checkpoints, and nothing younger than the retention.
func TestSweeperBatchPauseDeletesEveryExpiredRun(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	insertFinished(t, db, "old", 11, 48*time.Hour)
	insertFinished(t, db, "young", 3, time.Hour)

	paced, err := durable.NewSweeper(db.System, durable.SweeperConfig{
		Retention: 24 * time.Hour, BatchSize: 3, BatchPause: time.Millisecond,
	})
	require.NoError(t, err)
	n, err := paced.SweepOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(11), n, "four batches of up to three, three pauses")
	require.Equal(t, 3, countAll(t, db, "durable_runs"), "the young runs stay")
	require.Equal(t, 6, countAll(t, db, "durable_steps"), "with their checkpoints only")
	var old int
	require.NoError(t, db.Admin.QueryRow(context.Background(),
		"SELECT count(*) FROM platform.durable_runs WHERE id LIKE 'old-%'").Scan(&old))
	require.Zero(t, old)
}

// A context that ends during the pause stops SweepOnce at once with the
// context's error and the count so far, and Run with it: neither waits
// out the pause.
func TestSweeperBatchPauseStopsWithTheContext(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	insertFinished(t, db, "old", 5, 48*time.Hour)
	batches := &batchSignal{Execer: db.System, done: make(chan struct{}, 16)}
	long, err := durable.NewSweeper(batches, durable.SweeperConfig{
		Retention: 24 * time.Hour, BatchSize: 2, BatchPause: time.Hour,
		Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	require.Equal(t, 3, countAll(t, db, "durable_runs"))
	cancel()
	select {
	case r := <-once:
		require.ErrorIs(t, r.err, context.Canceled)
		require.Equal(t, int64(2), r.n, "the first batch only")
	case <-time.After(30 * time.Second):
		t.Fatal("SweepOnce waited out its pause after the context ended")
	}
	require.Equal(t, 3, countAll(t, db, "durable_runs"))

	ctx, cancel = context.WithCancel(context.Background())
	run := make(chan error, 1)
	go func() { run <- long.Run(ctx) }()
	require.Eventually(t, func() bool { return countAll(t, db, "durable_runs") == 1 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-run:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("Run waited out its pause after the context ended")
	}
	require.Equal(t, 1, countAll(t, db, "durable_runs"), "no batch after the context ended")
}

// NoBatchPause sweeps without pausing, as the zero value asks for the
// default pause; any other negative pause is a mistake.
func TestSweeperBatchPauseMustNotBeNegative(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, err := durable.NewSweeper(db.System, durable.SweeperConfig{BatchPause: -time.Millisecond})
	require.ErrorIs(t, err, durable.ErrInvalidConfig)

	insertFinished(t, db, "old", 5, 48*time.Hour)
	unpaced, err := durable.NewSweeper(db.System, durable.SweeperConfig{
		Retention: 24 * time.Hour, BatchSize: 2, BatchPause: durable.NoBatchPause,
	})
	require.NoError(t, err)
	n, err := unpaced.SweepOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	require.Zero(t, countAll(t, db, "durable_runs"))
}

// batchSignal is the sweeper's database, reporting each statement once it
// has returned to the sweeper.
type batchSignal struct {
	durable.Execer
	done chan struct{}
}

// Exec implements durable.Execer.
func (b *batchSignal) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := b.Execer.Exec(ctx, sql, args...)
	b.done <- struct{}{}
	return tag, err
}

// await waits for the next statement to return.
func (b *batchSignal) await(t *testing.T) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("no sweep batch returned within 30s")
	}
}
