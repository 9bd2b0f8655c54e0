package dlq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

func TestRescueMakesExpiredLeasesAvailableAgain(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newClock()
	sys := newClient(t, db.System, dlq.Config{Now: clock.Now})
	app := newClient(t, db.App, dlq.Config{Now: clock.Now})
	ctx := context.Background()
	res, err := app.EnqueueMany(ctx, []dlq.JobParams{
		{Tenant: tenantA, Queue: "q", MaxAttempts: 3},
		{Tenant: tenantA, Queue: "q", MaxAttempts: 1},
		{Tenant: tenantA, Queue: "q", MaxAttempts: 3},
	})
	require.NoError(t, err)
	// Leased by a worker that then vanished: two expired, one still valid.
	_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET state = 'running', attempt = 1,
		lease_until = CASE WHEN id = $3 THEN $1::timestamptz + interval '1 minute' ELSE $1::timestamptz - interval '1 second' END
		WHERE id = ANY($2)`, clock.Now(), []int64{res[0].ID, res[1].ID, res[2].ID}, res[2].ID)
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
	res, err := app.Enqueue(context.Background(), dlq.JobParams{Tenant: tenantA, Queue: "q"})
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

func TestStopAtDeadlineReleasesInFlightJobs(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	started := make(chan struct{}, 2)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(ctx context.Context, _ *dlq.Job) error {
			started <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueMany(context.Background(), []dlq.JobParams{{Tenant: tenantA, Queue: "q"}, {Tenant: tenantA, Queue: "q"}})
	require.NoError(t, err)
	require.NoError(t, worker.Start(context.Background()))
	<-started
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, worker.Stop(ctx), context.DeadlineExceeded)
	for _, r := range res {
		info := jobInfo(t, worker, r.ID)
		require.Equal(t, dlq.StateAvailable, info.State, "released for another worker")
		require.Zero(t, info.Attempt, "the interrupted attempt does not count")
		require.Empty(t, info.Errors)
	}
}

func TestCleanupDeletesFinishedJobsAfterRetention(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newClock()
	sys := newClient(t, db.System, dlq.Config{Now: clock.Now, Retention: time.Hour, DeadRetention: 48 * time.Hour})
	ctx := context.Background()
	ids := map[string]int64{}
	for _, state := range []string{"completed", "discarded", "dead", "available", "fresh"} {
		var id int64
		finalized := clock.Now().Add(-2 * time.Hour)
		st := state
		if state == "fresh" {
			st, finalized = "completed", clock.Now()
		}
		var fin any = finalized
		if st == "available" {
			fin = nil
		}
		require.NoError(t, db.System.QueryRow(ctx, `INSERT INTO platform.dlq_jobs (tenant_id, queue, state, max_attempts, run_at, created_at, finalized_at)
			VALUES ($1, 'q', $2, 1, $3, $3, $4) RETURNING id`, tenantA, st, clock.Now().Add(-3*time.Hour), fin).Scan(&id))
		ids[state] = id
	}
	n, err := sys.Cleanup(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	for state, id := range ids {
		_, err := sys.GetJob(ctx, id)
		if state == "completed" || state == "discarded" {
			require.ErrorIs(t, err, dlq.ErrJobNotFound, state)
		} else {
			require.NoError(t, err, state)
		}
	}
	clock.Advance(47 * time.Hour)
	n, err = sys.Cleanup(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the dead job past its own retention and the fresh one")
	_, err = sys.GetJob(ctx, ids["available"])
	require.NoError(t, err, "unfinished jobs are never cleaned up")
}

func TestStartedClientCleansUpOnItsOwn(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{
		Retention: time.Millisecond, CleanupInterval: 20 * time.Millisecond,
		Queues: map[string]dlq.QueueConfig{"q": {Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error { return nil })}},
	})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.Enqueue(context.Background(), dlq.JobParams{Tenant: tenantA, Queue: "q"})
	require.NoError(t, err)
	start(t, worker)
	require.Eventually(t, func() bool {
		_, err := worker.GetJob(context.Background(), res.ID)
		return err != nil
	}, 30*time.Second, 10*time.Millisecond)
	_, err = worker.GetJob(context.Background(), res.ID)
	require.ErrorIs(t, err, dlq.ErrJobNotFound, "completed, then deleted after its retention")
}
