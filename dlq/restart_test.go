package dlq_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

// TestWorkersSurviveDatabaseRestart restarts PostgreSQL while a worker
// runs jobs: the worker reconnects (pool and LISTEN connection), outcomes
// it could not record are retried or rescued, and every job enqueued before
// and after the restart completes.
func TestWorkersSurviveDatabaseRestart(t *testing.T) {
	t.Parallel()
	db, restart := pgtest.NewRestartable(t)
	ctx := context.Background()
	// Pools that notice dead connections quickly.
	pool := func(role pgtest.Role) *pgxpool.Pool {
		cfg, err := pgxpool.ParseConfig(db.URL(role))
		require.NoError(t, err)
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	appPool, sysPool := pool(pgtest.RoleApp), pool(pgtest.RoleSystem)
	var mu sync.Mutex
	runs := map[int64]int{}
	worker := newClient(t, sysPool, dlq.Config{
		// No poll during the test: only the LISTEN connection, once it
		// has reconnected, and the worker's own retries find jobs.
		PollInterval: 10 * time.Minute,
		LeaseGrace:   time.Second, RescueInterval: 200 * time.Millisecond,
		Backoff: dlq.BackoffFunc(func(int) time.Duration { return 10 * time.Millisecond }),
		Queues: map[string]dlq.QueueConfig{"q": {Concurrency: 4, Timeout: time.Second, Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			mu.Lock()
			runs[job.ID]++
			mu.Unlock()
			time.Sleep(10 * time.Millisecond) // some work in flight when the server goes
			return nil
		})}},
	})
	app := newClient(t, appPool, dlq.Config{MaxAttempts: 100})
	enqueue := func(n int) []int64 {
		params := make([]dlq.JobParams, n)
		for i := range params {
			params[i] = dlq.JobParams{Queue: "q"}
		}
		var res []dlq.Inserted
		require.Eventually(t, func() bool {
			var err error
			res, err = app.EnqueueManyForTenant(ctx, tenantA, params)
			return err == nil
		}, time.Minute, 50*time.Millisecond)
		ids := make([]int64, n)
		for i, r := range res {
			ids[i] = r.ID
		}
		return ids
	}
	before := enqueue(400)
	start(t, worker)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) > 0
	}, time.Minute, 5*time.Millisecond)

	var completed int
	require.NoError(t, sysPool.QueryRow(ctx, "SELECT count(*) FROM platform.dlq_jobs WHERE state = 'completed'").Scan(&completed))
	require.Less(t, completed, len(before), "the restart comes while jobs are in flight")
	require.NoError(t, restart(ctx))
	after := enqueue(50)

	var left int
	require.Eventually(t, func() bool {
		err := sysPool.QueryRow(ctx, "SELECT count(*) FROM platform.dlq_jobs WHERE state <> 'completed'").Scan(&left)
		return err == nil && left == 0
	}, time.Minute, 50*time.Millisecond, "jobs left: %d", left)
	require.NoError(t, sysPool.QueryRow(ctx, "SELECT count(*) FROM platform.dlq_jobs WHERE state = 'completed'").Scan(&completed))
	require.Equal(t, len(before)+len(after), completed, "no job lost")
	mu.Lock()
	defer mu.Unlock()
	for _, id := range append(before, after...) {
		require.GreaterOrEqual(t, runs[id], 1, "job %d ran", id)
	}
}
