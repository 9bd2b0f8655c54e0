package durable_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

func TestCancelStopsTheRun(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	registerVotes(t, rt, durable.NoTimeout)
	started, release := make(chan struct{}), make(chan struct{})
	returned := make(chan error, 1)
	_, err := durable.Register(rt, "busy", func(ctx context.Context, in int) (int, error) {
		_, err := durable.Step(ctx, "slow", func(context.Context) (int, error) {
			close(started)
			<-release
			return in, nil
		})
		returned <- err
		return 0, err
	})
	require.NoError(t, err)
	work(t, rt)

	// A waiting run.
	waiting, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	waitStatus(t, rt, tenantA, waiting.ID, durable.StatusWaiting)
	require.NoError(t, rt.Cancel(ctxA, waiting.ID, "customer left"))
	got, err := rt.Get(ctxA, waiting.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusCancelled, got.Status)
	require.Equal(t, "customer left", got.Error)
	require.ErrorIs(t, rt.Signal(ctxA, waiting.ID, "vote", vote{}), durable.ErrRunFinished)
	require.ErrorIs(t, rt.Cancel(ctxA, waiting.ID, ""), durable.ErrRunFinished)
	require.ErrorIs(t, rt.Cancel(ctxA, "missing", ""), durable.ErrRunNotFound)

	// A run in the middle of a step: the step's checkpoint is refused.
	busy, err := rt.Start(ctxA, "busy", 3)
	require.NoError(t, err)
	<-started
	require.NoError(t, rt.Cancel(ctxA, busy.ID, ""))
	close(release)
	require.ErrorIs(t, <-returned, durable.ErrLeaseLost)
	got, err = rt.Get(ctxA, busy.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusCancelled, got.Status)
	require.Equal(t, "cancelled", got.Error)
	require.Zero(t, countRows(t, db, "durable_steps", busy.ID))
}

func TestResumeRetriesAFailedRunFromItsLastCheckpoint(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	var firstCalls, secondCalls atomic.Int32
	var broken atomic.Bool
	broken.Store(true)
	wf, err := durable.Register(rt, "fixable", func(ctx context.Context, in int) (int, error) {
		a, err := durable.Step(ctx, "first", func(context.Context) (int, error) { firstCalls.Add(1); return in + 1, nil })
		if err != nil {
			return 0, err
		}
		return durable.Step(ctx, "second", func(context.Context) (int, error) {
			secondCalls.Add(1)
			if broken.Load() {
				return 0, errors.New("downstream is down")
			}
			return a * 10, nil
		})
	})
	require.NoError(t, err)
	work(t, rt)
	run, err := wf.Start(ctxA, 4)
	require.NoError(t, err)
	_, err = wf.Result(ctxA, run.ID)
	require.ErrorIs(t, err, durable.ErrRunFailed)
	require.ErrorContains(t, err, "downstream is down")
	require.ErrorIs(t, rt.Resume(ctxA, "missing"), durable.ErrRunNotFound)

	broken.Store(false)
	require.NoError(t, rt.Resume(ctxA, run.ID))
	out, err := wf.Result(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, 50, out)
	require.Equal(t, int32(1), firstCalls.Load(), "the recorded step did not run again")
	require.Equal(t, int32(2), secondCalls.Load())
	require.ErrorIs(t, rt.Resume(ctxA, run.ID), durable.ErrRunNotFailed)
}

func TestListIncompleteRunsWithFiltersAndPages(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	registerGreet(t, rt)
	registerVotes(t, rt, durable.NoTimeout)
	var ids []string
	for i := range 5 {
		run, err := rt.Start(ctxA, "greet", greeting{Name: "x"}, durable.WithRunID(fmt.Sprintf("g%d", i)))
		require.NoError(t, err)
		ids = append(ids, run.ID)
	}
	_, err := rt.Start(ctxA, "votes", 0, durable.WithRunID("v"))
	require.NoError(t, err)
	_, err = rt.Start(ctxB, "greet", greeting{}, durable.WithRunID("other-tenant"))
	require.NoError(t, err)
	require.NoError(t, rt.Cancel(ctxA, "g4", ""))

	var seen []string
	opts := durable.ListOptions{Workflow: "greet", Limit: 2}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3)
		page, err := rt.List(ctxA, opts)
		require.NoError(t, err)
		for _, r := range page.Runs {
			seen = append(seen, r.ID)
		}
		if page.Next == "" {
			break
		}
		opts.After = page.Next
	}
	require.Equal(t, ids[:4], seen, "incomplete greet runs, oldest first; g4 is cancelled")

	page, err := rt.List(ctxA, durable.ListOptions{Statuses: []durable.Status{durable.StatusCancelled}})
	require.NoError(t, err)
	require.Len(t, page.Runs, 1)
	require.Equal(t, "g4", page.Runs[0].ID)
	all, err := rt.List(ctxA, durable.ListOptions{})
	require.NoError(t, err)
	require.Len(t, all.Runs, 5)

	_, err = rt.List(ctxA, durable.ListOptions{After: "!!"})
	require.ErrorIs(t, err, durable.ErrInvalidCursor)
	_, err = rt.List(ctxA, durable.ListOptions{Statuses: []durable.Status{"lost"}})
	require.Error(t, err)
}

func TestSweeperDeletesOldFinishedRunsOfEveryTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	registerGreet(t, rt)
	registerVotes(t, rt, durable.NoTimeout)
	old, err := rt.Start(ctxA, "greet", greeting{Name: "old"})
	require.NoError(t, err)
	oldB, err := rt.Start(ctxB, "greet", greeting{Name: "old"})
	require.NoError(t, err)
	pending, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	runUntil(t, rt, tenantA, pending.ID, durable.StatusWaiting)
	require.NoError(t, rt.Signal(ctxA, pending.ID, "vote", vote{}))
	require.Equal(t, durable.StatusCompleted, waitStatusWorking(t, rt, tenantA, old.ID))
	require.Equal(t, durable.StatusCompleted, waitStatusWorking(t, rt, tenantB, oldB.ID))
	recent, err := rt.Start(ctxA, "greet", greeting{Name: "new"})
	require.NoError(t, err)
	require.NoError(t, rt.Cancel(ctxA, recent.ID, ""))
	// Two days pass for the old runs and the waiting one.
	for _, id := range []string{old.ID, oldB.ID, pending.ID} {
		travel(t, db, id, 48*time.Hour)
	}

	// Under the serving role row-level security hides every run.
	blind, err := durable.NewSweeper(db.App, durable.SweeperConfig{Retention: 24 * time.Hour})
	require.NoError(t, err)
	deleted, err := blind.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, deleted)

	sweeper, err := durable.NewSweeper(db.System, durable.SweeperConfig{Retention: 24 * time.Hour, BatchSize: 1})
	require.NoError(t, err)
	deleted, err = sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), deleted, "the old runs of both tenants, one batch each")
	require.Zero(t, countRows(t, db, "durable_runs", old.ID))
	require.Zero(t, countRows(t, db, "durable_steps", old.ID), "checkpoints went with the run")
	require.Equal(t, 1, countRows(t, db, "durable_runs", recent.ID))
	require.Equal(t, 1, countRows(t, db, "durable_runs", pending.ID), "incomplete runs are kept")
	require.Equal(t, 1, countRows(t, db, "durable_signals", pending.ID))

	// Run sweeps at once and returns when its context ends.
	travel(t, db, recent.ID, 48*time.Hour)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sweeper.Run(runCtx) }()
	require.Eventually(t, func() bool { return countRows(t, db, "durable_runs", recent.ID) == 0 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	for _, cfg := range []durable.SweeperConfig{{Retention: -1}, {BatchSize: -1}, {Interval: -1}} {
		_, err = durable.NewSweeper(db.System, cfg)
		require.ErrorIs(t, err, durable.ErrInvalidConfig)
	}
	_, err = durable.NewSweeper(nil, durable.SweeperConfig{})
	require.ErrorIs(t, err, durable.ErrInvalidConfig)
}

// waitStatusWorking runs rt's workers until the run is final.
func waitStatusWorking(t testing.TB, rt *durable.Runtime, tenant, runID string) durable.Status {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	run := waitRun(t, rt, tenant, runID)
	cancel()
	require.NoError(t, <-done)
	return run.Status
}
