package durable_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// registerCounted registers a one-step workflow whose plain step records a
// side effect outside any transaction and then waits for hold: two
// workers executing the run at once would both record theirs.
func registerCounted(t testing.TB, rt *durable.Runtime, db *pgtest.DB, hold func(context.Context)) {
	t.Helper()
	_, err := durable.Register(rt, "counted", func(ctx context.Context, in int) (int, error) {
		run, _ := durable.CurrentRun(ctx)
		return durable.Step(ctx, "effect", func(ctx context.Context) (int, error) {
			if err := effectOutsideTx(ctx, db.System, run.Tenant, run.RunID, "effect"); err != nil {
				return 0, err
			}
			hold(ctx)
			return in * 2, nil
		})
	})
	require.NoError(t, err)
}

// expireAsIfCrashed makes runID look like a run whose worker died while
// executing it.
func expireAsIfCrashed(t testing.TB, db *pgtest.DB, runID string) {
	t.Helper()
	_, err := db.Admin.Exec(context.Background(), `
		UPDATE platform.durable_runs SET status = 'running', owner = 'dead', attempt = attempt + 1,
			lease_until = now() - interval '1 second', ready_at = now() - interval '1 second'
		WHERE id = $1`, runID)
	require.NoError(t, err)
}

func TestTwoRuntimesRacingForExpiredRunsExecuteEachOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	ctx := context.Background()
	const runs = 20
	pause := func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	first := newRuntime(t, db, func(c *durable.Config) { c.WorkerID = "first"; c.Concurrency = 4 })
	second := newRuntime(t, db, func(c *durable.Config) { c.WorkerID = "second"; c.Concurrency = 4 })
	registerCounted(t, first, db, pause)
	registerCounted(t, second, db, pause)
	ids := make([]string, runs)
	for i := range ids {
		run, err := first.Start(ctxA, "counted", i)
		require.NoError(t, err)
		ids[i] = run.ID
		expireAsIfCrashed(t, db, run.ID)
	}

	// Both poll every 20ms from now on: each claim races the other's.
	work(t, first)
	work(t, second)

	owners := map[string]int{}
	for i, id := range ids {
		run := waitRun(t, first, tenantA, id)
		require.Equal(t, durable.StatusCompleted, run.Status, run.Error)
		require.JSONEq(t, fmt.Sprint(i*2), string(run.Output))
		require.Equal(t, int64(2), run.Attempt, "claimed once after the crash")
		require.Equal(t, map[string]int{"effect": 1}, effects(t, db, id), "executed by one runtime only")
		var owner string
		require.NoError(t, db.Admin.QueryRow(ctx, "SELECT coalesce(owner, '') FROM platform.durable_runs WHERE id = $1", id).Scan(&owner))
		owners[owner]++
	}
	require.Equal(t, map[string]int{"": runs}, owners, "finished runs have no owner")
}

func TestHeartbeatKeepsALongStepsLease(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	started := make(chan struct{})
	var once sync.Once
	slow := func(ctx context.Context) {
		once.Do(func() { close(started) })
		select {
		case <-ctx.Done():
		case <-time.After(2500 * time.Millisecond): // longer than two leases
		}
	}
	// Renewed ten times per lease, so that a busy machine does not let it
	// lapse.
	owner := newRuntime(t, db, func(c *durable.Config) {
		c.Lease = time.Second
		c.Heartbeat = 100 * time.Millisecond
		c.WorkerID = "owner"
	})
	registerCounted(t, owner, db, slow)
	run, err := owner.Start(ctxA, "counted", 1)
	require.NoError(t, err)
	work(t, owner)
	<-started

	rival := newRuntime(t, db, func(c *durable.Config) { c.Lease = time.Second; c.WorkerID = "rival" })
	registerCounted(t, rival, db, func(context.Context) {})
	work(t, rival)

	done := waitRun(t, owner, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.Equal(t, int64(1), done.Attempt, "the rival never took the run")
	require.Equal(t, map[string]int{"effect": 1}, effects(t, db, run.ID))
}

func TestShutdownHandsTheLeaseBack(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	started := make(chan struct{}, 1)
	var first atomic.Bool
	register := func(rt *durable.Runtime) {
		_, err := durable.Register(rt, "interruptible", func(ctx context.Context, in int) (int, error) {
			return durable.Step(ctx, "wait", func(ctx context.Context) (int, error) {
				if run, _ := durable.CurrentRun(ctx); run.Attempt > 0 {
					panic("a step's context carries no run")
				}
				if first.CompareAndSwap(false, true) { // the first execution blocks until stopped
					started <- struct{}{}
					<-ctx.Done()
					return 0, ctx.Err()
				}
				return in * 2, nil
			})
		})
		require.NoError(t, err)
	}
	// A lease far longer than the test's wait: only a handed-back lease
	// lets the second runtime in.
	leaving := newRuntime(t, db, func(c *durable.Config) { c.Lease = time.Hour })
	register(leaving)
	run, err := leaving.Start(ctxA, "interruptible", 21)
	require.NoError(t, err)
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- leaving.Run(stop) }()
	<-started
	cancel()
	require.NoError(t, <-done)
	require.Zero(t, countRows(t, db, "durable_steps", run.ID), "the interrupted step's failure was not recorded")
	stopped, err := leaving.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Empty(t, stopped.Owner, "the lease was handed back")

	next := newRuntime(t, db, nil)
	register(next)
	work(t, next)
	finished := waitRun(t, next, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, finished.Status, finished.Error)
	require.JSONEq(t, "42", string(finished.Output))
	// A claim already on its way when the stop began may take the handed
	// back run and hand it straight back: one claim more, never two
	// executions.
	require.GreaterOrEqual(t, finished.Attempt, int64(2))
}

func TestAWorkerThatLostItsLeaseWritesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	started, release := make(chan struct{}), make(chan struct{})
	returned := make(chan error, 1)
	rt := newRuntime(t, db, func(c *durable.Config) { c.Lease = time.Hour })
	_, err := durable.Register(rt, "overtaken", func(ctx context.Context, in int) (int, error) {
		_, err := durable.Step(ctx, "slow", func(context.Context) (int, error) {
			close(started)
			<-release
			return in, nil
		})
		returned <- err
		return 0, err
	})
	require.NoError(t, err)
	run, err := rt.Start(ctxA, "overtaken", 1)
	require.NoError(t, err)
	work(t, rt)
	<-started
	// Another worker claims the run meanwhile (as after a long pause).
	_, err = db.Admin.Exec(ctx, "UPDATE platform.durable_runs SET attempt = attempt + 1, owner = 'thief' WHERE id = $1", run.ID)
	require.NoError(t, err)
	close(release)

	require.ErrorIs(t, <-returned, durable.ErrLeaseLost)
	require.Zero(t, countRows(t, db, "durable_steps", run.ID), "the checkpoint was refused")
	got, err := rt.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusRunning, got.Status)
	require.Equal(t, "thief", got.Owner)
	require.Equal(t, int64(2), got.Attempt)
}
