package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

// TestFetchReadsNoFinishedJobs starts a worker on an empty table, as a new
// deployment does, lets it fetch many times, then fills the table with
// finished jobs (as retention keeps them) and runs more jobs. A plan
// chosen while the table was empty, kept for the connection, would read
// the whole table at every fetch, comparing every finished job with the
// ids fetched; the fetch statement is renewed once the ids have grown, so
// only the first fetch after the fill may read it.
func TestFetchReadsNoFinishedJobs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db := pgtest.New(t)
	// Few connections, so that each serves many fetches.
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleSystem))
	require.NoError(t, err)
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	ran := make(chan int64, 1)
	// Fetches come from the notifications and the finished jobs only, so
	// they are counted: no poll in between.
	worker := newClient(t, pool, dlq.Config{FetchCooldown: time.Millisecond, PollInterval: time.Hour, Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 1, Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			ran <- job.ID
			return nil
		})},
	}})
	require.NoError(t, worker.Start(ctx))
	app := newClient(t, db.App, dlq.Config{})
	runOne := func() {
		t.Helper()
		in, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q"})
		require.NoError(t, err)
		select {
		case id := <-ran:
			require.Equal(t, in.ID, id)
		case <-ctx.Done():
			t.Fatal("the job never ran")
		}
	}
	for range 20 {
		runOne()
	}
	const finished = 20_000
	_, err = db.Admin.Exec(ctx, `
		INSERT INTO platform.dlq_jobs (tenant_id, queue, max_attempts, run_at, created_at, state, finalized_at)
		SELECT $1, 'q', 10, now(), now(), 'completed', now() FROM generate_series(1, $2)`, tenantA, finished)
	require.NoError(t, err)
	for range 10 {
		runOne()
	}
	require.NoError(t, worker.Stop(ctx))
	// A backend publishes its table counts when it exits.
	pool.Close()
	db.System.Reset()
	require.Eventually(t, func() bool {
		var open int
		err := db.Owner.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2", db.Name, pgtest.SystemRole).Scan(&open)
		return err == nil && open == 0
	}, 30*time.Second, 10*time.Millisecond)
	var read int64
	require.NoError(t, db.Owner.QueryRow(ctx, "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_user_tables WHERE relid = 'platform.dlq_jobs'::regclass").Scan(&read))
	// Each job after the fill takes two fetches (its notification's and
	// the one after it finished): twenty full reads with a stale plan.
	require.Less(t, read, int64(3*finished), "rows read by sequential scans of dlq_jobs")
}
