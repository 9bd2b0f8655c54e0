package durable_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// registerTwoSteps registers a workflow of two counted steps; the first
// execution of "first" calls hold before it returns.
func registerTwoSteps(t testing.TB, rt *durable.Runtime, first, second *atomic.Int32, hold func(context.Context) error) {
	t.Helper()
	_, err := durable.Register(rt, "two-steps", func(ctx context.Context, in int) (int, error) {
		a, err := durable.Step(ctx, "first", func(ctx context.Context) (int, error) {
			if first.Add(1) == 1 {
				if err := hold(ctx); err != nil {
					return 0, err
				}
			}
			return in + 1, nil
		})
		if err != nil {
			return 0, err
		}
		return durable.Step(ctx, "second", func(context.Context) (int, error) {
			second.Add(1)
			return a * 2, nil
		})
	})
	require.NoError(t, err)
}

func TestSoftStopCheckpointsTheStepInFlightAndParksTheRun(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var first, second atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	hold := func(context.Context) error { close(started); <-release; return nil }
	// A lease far longer than the test: only a handed-back lease lets the
	// next runtime in.
	leaving := newRuntime(t, db, func(c *durable.Config) { c.Lease = time.Hour; c.WorkerID = "leaving" })
	registerTwoSteps(t, leaving, &first, &second, hold)
	registerGreet(t, leaving)
	run, err := leaving.Start(ctxA, "two-steps", 20)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- leaving.Run(ctx) }()
	<-started

	// Stop bounded by a context that is already done: the soft stop begins
	// and Stop gives up waiting at once, the step still running.
	expired, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, leaving.Stop(expired), context.Canceled)
	// A stopping runtime no longer takes runs started through it.
	probe, err := leaving.Start(ctxA, "greet", greeting{Name: "probe"})
	require.NoError(t, err)
	require.Equal(t, durable.StatusPending, probe.Status)

	close(release)
	require.NoError(t, leaving.Stop(ctx))
	require.NoError(t, <-done)

	parked, err := leaving.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusRunning, parked.Status)
	require.Empty(t, parked.Owner, "the lease was handed back")
	steps, err := leaving.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"first"}, stepNames(steps), "the step in flight was checkpointed, the next one not started")
	require.Equal(t, int32(0), second.Load())

	next := newRuntime(t, db, func(c *durable.Config) { c.WorkerID = "next" })
	registerTwoSteps(t, next, &first, &second, hold)
	registerGreet(t, next)
	work(t, next)
	finished := waitRun(t, next, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, finished.Status, finished.Error)
	require.JSONEq(t, "42", string(finished.Output))
	require.Equal(t, int64(2), finished.Attempt)
	require.Equal(t, int32(1), first.Load(), "the checkpointed step did not run again")
	require.Equal(t, int32(1), second.Load())
	require.Equal(t, durable.StatusCompleted, waitRun(t, next, tenantA, probe.ID).Status)

	// Stopping a runtime that is not running is a no-op, and a stopped
	// runtime can run again.
	require.NoError(t, leaving.Stop(ctx))
	require.NoError(t, leaving.StopAndCancel(ctx))
	again, cancelAgain := context.WithCancel(ctx)
	cancelAgain()
	require.NoError(t, leaving.Run(again))
}

func TestHardStopCancelsTheRunningStep(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var first, second atomic.Int32
	started := make(chan struct{})
	cause := make(chan error, 1)
	hold := func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}
	leaving := newRuntime(t, db, func(c *durable.Config) { c.Lease = time.Hour })
	registerTwoSteps(t, leaving, &first, &second, hold)
	run, err := leaving.Start(ctxA, "two-steps", 20)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- leaving.Run(ctx) }()
	<-started

	// The soft stop runs out of time; the hard stop cuts the step short.
	expired, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, leaving.Stop(expired), context.Canceled)
	require.NoError(t, leaving.StopAndCancel(ctx))
	require.ErrorIs(t, <-cause, durable.ErrStopped, "the step's context was cancelled by the hard stop")
	require.NoError(t, <-done)
	require.Zero(t, countRows(t, db, "durable_steps", run.ID), "the interrupted step's failure was not recorded")
	stopped, err := leaving.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Empty(t, stopped.Owner, "the lease was handed back")

	next := newRuntime(t, db, nil)
	registerTwoSteps(t, next, &first, &second, hold)
	work(t, next)
	finished := waitRun(t, next, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, finished.Status, finished.Error)
	require.JSONEq(t, "42", string(finished.Output))
	require.Equal(t, int32(2), first.Load(), "the interrupted step ran again")
}
