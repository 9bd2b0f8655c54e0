package dlq_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

func TestRescueMakesExpiredLeasesAvailableAgain(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	sys := newClient(t, db.System, dlq.Config{})
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	res, err := app.EnqueueManyForTenant(ctx, tenantA, []dlq.JobParams{
		{Queue: "q", MaxAttempts: 3},
		{Queue: "q", MaxAttempts: 1},
		{Queue: "q", MaxAttempts: 3},
	})
	require.NoError(t, err)
	// Leased by a worker that then vanished: two expired, one still valid.
	_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET state = 'running', attempt = 1,
		lease_until = CASE WHEN id = $2 THEN now() + interval '1 minute' ELSE now() - interval '1 second' END
		WHERE id = ANY($1)`, []int64{res[0].ID, res[1].ID, res[2].ID}, res[2].ID)
	require.NoError(t, err)

	n, err := sys.Rescue(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	again := jobInfo(t, sys, res[0].ID)
	require.Equal(t, dlq.StateAvailable, again.State)
	require.Len(t, again.Errors, 1)
	require.Equal(t, dlq.ErrLeaseExpired.Error(), again.Errors[0].Error)
	require.Equal(t, dlq.StateDead, jobInfo(t, sys, res[1].ID).State, "its only attempt was lost")
	require.Equal(t, dlq.StateRunning, jobInfo(t, sys, res[2].ID).State, "its lease still holds")
}

func TestStopWaitsForInFlightJobs(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	started, finish := make(chan struct{}), make(chan struct{})
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error {
			close(started)
			<-finish
			return nil
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueForTenant(context.Background(), tenantA, dlq.JobParams{Queue: "q"})
	require.NoError(t, err)
	require.NoError(t, worker.Start(context.Background()))
	require.ErrorIs(t, worker.Start(context.Background()), dlq.ErrStarted)
	<-started
	stopped := make(chan error)
	go func() { stopped <- worker.Stop(context.Background()) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a job was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(finish)
	require.NoError(t, <-stopped)
	require.Equal(t, dlq.StateCompleted, jobInfo(t, worker, res.ID).State, "recorded before Stop returned")
}

// blockingWorker returns a worker whose handler signals started and then
// waits for its context to end.
func blockingWorker(t *testing.T, db *pgtest.DB, started chan<- struct{}) *dlq.Client {
	return newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(ctx context.Context, _ *dlq.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})},
	}})
}

func requireReleased(t *testing.T, c *dlq.Client, res []dlq.Inserted) {
	t.Helper()
	for _, r := range res {
		info := jobInfo(t, c, r.ID)
		require.Equal(t, dlq.StateAvailable, info.State, "released for another worker")
		require.Zero(t, info.Attempt, "the interrupted attempt does not count")
		require.Empty(t, info.Errors)
	}
}

func TestStopAtDeadlineReleasesInFlightJobs(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	started := make(chan struct{}, 2)
	worker := blockingWorker(t, db, started)
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{{Queue: "q"}, {Queue: "q"}})
	require.NoError(t, err)
	require.NoError(t, worker.Start(context.Background()))
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, worker.Stop(ctx), context.DeadlineExceeded)
	requireReleased(t, worker, res)
}

func TestStopAndCancelReleasesAtOnceAndCutsAStopShort(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	started := make(chan struct{}, 2)
	worker := blockingWorker(t, db, started)
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{{Queue: "q"}, {Queue: "q"}})
	require.NoError(t, err)
	require.NoError(t, worker.Start(context.Background()))
	<-started
	<-started
	// A soft stop without a deadline waits for handlers that never end…
	soft := make(chan error, 1)
	go func() { soft <- worker.Stop(context.Background()) }()
	// …until the hard stop cancels them.
	require.NoError(t, worker.StopAndCancel(context.Background()))
	require.NoError(t, <-soft)
	requireReleased(t, worker, res)

	// Cancelling Start's context is a hard stop too, and the client can
	// start again afterwards.
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, worker.Start(ctx))
	<-started
	<-started
	cancel()
	require.Eventually(t, func() bool {
		err := worker.Start(context.Background())
		if err == nil {
			return true
		}
		require.ErrorIs(t, err, dlq.ErrStarted)
		return false
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, worker.StopAndCancel(context.Background()))
}

// TestStartStopLoopLosesNoJob starts and stops workers over and over while
// single-attempt jobs wait. A stop that cut a fetch short after the server
// had claimed its jobs would leave them leased to nobody, to go dead
// unrun at the rescue; a stop that let a loop start a job after the jobs
// were awaited would panic or lose its outcome. Every job must complete
// exactly once.
func TestStartStopLoopLosesNoJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	const jobs = 400
	params := make([]dlq.JobParams, jobs)
	for i := range params {
		params[i] = dlq.JobParams{Queue: "q", MaxAttempts: 1}
	}
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, params)
	require.NoError(t, err)

	var mu sync.Mutex
	runs := map[int64]int{}
	counting := func() dlq.Handler {
		return dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
			mu.Lock()
			runs[job.ID]++
			mu.Unlock()
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return nil
		})
	}
	worker := func() *dlq.Client {
		return newClient(t, db.System, dlq.Config{
			LeaseGrace: time.Second, RescueInterval: 100 * time.Millisecond,
			Queues: map[string]dlq.QueueConfig{"q": {Concurrency: 8, FetchBatch: 4, Timeout: 10 * time.Second, Handler: counting()}},
		})
	}
	// A claim lost by a stop expires after 11s and is then rescued as
	// dead by the next worker, so the loop ends either way.
	finished := func() int {
		var n int
		_ = db.System.QueryRow(context.Background(), "SELECT count(*) FROM platform.dlq_jobs WHERE state IN ('completed', 'dead')").Scan(&n)
		return n
	}
	// Two clients started and stopped in turn from two goroutines, each
	// also reused across starts.
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Minute)
	for range 2 {
		c := worker()
		wg.Go(func() {
			for finished() < jobs && time.Now().Before(deadline) {
				if err := c.Start(context.Background()); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := c.Stop(ctx)
				cancel()
				if err != nil {
					t.Errorf("a soft stop of jobs that end at once: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, countJobs(t, db.System, "state = 'dead'"), "no job went dead without running")
	require.Equal(t, jobs, countJobs(t, db.System, "state = 'completed'"))
	mu.Lock()
	defer mu.Unlock()
	for _, r := range res {
		require.Equal(t, 1, runs[r.ID], "job %d ran exactly once", r.ID)
	}
}

func TestSweeperDeletesFinishedJobsAfterRetention(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	sys := newClient(t, db.System, dlq.Config{})
	sweeper, err := dlq.NewSweeper(db.System, dlq.SweeperConfig{Retention: time.Hour, DeadRetention: 48 * time.Hour, BatchSize: 1})
	require.NoError(t, err)
	ctx := context.Background()
	ids := map[string]int64{}
	// Finished two hours ago by the database's clock, except "fresh" and
	// "old dead" (finished three days ago).
	for _, state := range []string{"completed", "discarded", "dead", "available", "fresh", "old dead"} {
		var id int64
		st, age := state, "2 hours"
		switch state {
		case "fresh":
			st, age = "completed", "0 seconds"
		case "old dead":
			st, age = "dead", "3 days"
		}
		require.NoError(t, db.System.QueryRow(ctx, `INSERT INTO platform.dlq_jobs (tenant_id, queue, state, max_attempts, run_at, created_at, finalized_at)
			VALUES ($1, 'q', $2, 1, now() - interval '4 days', now() - interval '4 days',
			        CASE WHEN $2 <> 'available' THEN now() - $3::interval END) RETURNING id`, tenantA, st, age).Scan(&id))
		ids[state] = id
	}
	n, err := sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), n, "in batches of one")
	for state, id := range ids {
		_, err := sys.GetJob(ctx, id)
		if state == "completed" || state == "discarded" || state == "old dead" {
			require.ErrorIs(t, err, dlq.ErrJobNotFound, state)
		} else {
			require.NoError(t, err, state)
		}
	}
	n, err = sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	_, err = dlq.NewSweeper(db.System, dlq.SweeperConfig{Retention: -time.Hour})
	require.ErrorIs(t, err, dlq.ErrInvalidConfig)
	_, err = dlq.NewSweeper(nil, dlq.SweeperConfig{})
	require.ErrorIs(t, err, dlq.ErrInvalidConfig)

	// Run sweeps until its context ends, then returns the context's error,
	// as every package's Sweeper does.
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan error)
	go func() { ran <- sweeper.Run(runCtx) }()
	cancel()
	require.ErrorIs(t, <-ran, context.Canceled)
}

func TestStartedClientCleansUpOnItsOwn(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{
		Retention: time.Millisecond, CleanupInterval: 20 * time.Millisecond,
		Queues: map[string]dlq.QueueConfig{"q": {Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error { return nil })}},
	})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueForTenant(context.Background(), tenantA, dlq.JobParams{Queue: "q"})
	require.NoError(t, err)
	start(t, worker)
	require.Eventually(t, func() bool {
		_, err := worker.GetJob(context.Background(), res.ID)
		return err != nil
	}, 30*time.Second, 10*time.Millisecond)
	_, err = worker.GetJob(context.Background(), res.ID)
	require.ErrorIs(t, err, dlq.ErrJobNotFound, "completed, then deleted after its retention")
}

// A paced sweeper waits BatchPause between its batches: it deletes the
// same jobs, and a context that ends during a pause stops the sweep with
// the context's error and the count so far.
func TestSweeperBatchPause(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	insert := func(n int) {
		_, err := db.System.Exec(ctx, `INSERT INTO platform.dlq_jobs (tenant_id, queue, state, max_attempts, run_at, created_at, finalized_at)
			SELECT $1, 'q', 'completed', 1, now() - interval '4 days', now() - interval '4 days', now() - interval '2 days'
			FROM generate_series(1, $2)`, tenantA, n)
		require.NoError(t, err)
	}
	insert(5)
	paced, err := dlq.NewSweeper(db.System, dlq.SweeperConfig{BatchSize: 2, BatchPause: time.Millisecond})
	require.NoError(t, err)
	n, err := paced.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), n, "three batches, two pauses")
	require.Zero(t, countJobs(t, db.System, "true"))

	insert(5)
	long, err := dlq.NewSweeper(db.System, dlq.SweeperConfig{BatchSize: 2, BatchPause: time.Hour})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	type result struct {
		n   int64
		err error
	}
	done := make(chan result)
	go func() {
		n, err := long.SweepOnce(cctx)
		done <- result{n, err}
	}()
	// The first batch runs at once; the sweep then waits an hour.
	require.Eventually(t, func() bool { return countJobs(t, db.System, "true") == 3 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	r := <-done
	require.ErrorIs(t, r.err, context.Canceled)
	require.Equal(t, int64(2), r.n)

	_, err = dlq.NewSweeper(db.System, dlq.SweeperConfig{BatchPause: -time.Second})
	require.ErrorIs(t, err, dlq.ErrInvalidConfig)
	_, err = dlq.NewClient(db.System, dlq.Config{CleanupBatchPause: -time.Second})
	require.ErrorIs(t, err, dlq.ErrInvalidConfig)
	_, err = dlq.NewSweeper(db.System, dlq.SweeperConfig{BatchPause: dlq.NoBatchPause})
	require.NoError(t, err)
	_, err = dlq.NewClient(db.System, dlq.Config{CleanupBatchPause: dlq.NoBatchPause})
	require.NoError(t, err)
}
