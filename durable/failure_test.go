package durable_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

func TestBadValuesFailTheRunWithTheReason(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	rt := newRuntime(t, db, nil)
	var ran atomic.Int32
	_, err := durable.Register(rt, "wants-struct", func(ctx context.Context, in greeting) (int, error) {
		ran.Add(1)
		return 0, nil
	})
	require.NoError(t, err)
	_, err = durable.Register(rt, "nan-output", func(ctx context.Context, in int) (float64, error) {
		return math.NaN(), nil
	})
	require.NoError(t, err)
	_, err = durable.Register(rt, "nan-step", func(ctx context.Context, in int) (int, error) {
		_, err := durable.TxStep(ctx, "nan", func(ctx context.Context, tx pgx.Tx) (float64, error) {
			return math.NaN(), effect(ctx, tx, "nan-step", "nan")
		})
		// Even a workflow swallowing the error cannot complete.
		_ = err
		return 7, nil
	})
	require.NoError(t, err)
	_, err = durable.Register(rt, "panics", func(ctx context.Context, in int) (int, error) {
		return durable.Step(ctx, "boom", func(ctx context.Context) (int, error) {
			_, ok := durable.CurrentRun(ctx)
			if !ok { // a step's function cannot start steps of its own
				panic("boom")
			}
			return 0, nil
		})
	})
	require.NoError(t, err)
	work(t, rt)

	panics, err := rt.Start(ctxA, "panics", 1)
	require.NoError(t, err)
	bad, err := rt.Start(ctxA, "wants-struct", []int{1, 2})
	require.NoError(t, err)
	nan, err := rt.Start(ctxA, "nan-output", 1)
	require.NoError(t, err)
	step, err := rt.Start(ctxA, "nan-step", 1, durable.WithRunID("nan-step"))
	require.NoError(t, err)

	for _, tc := range []struct {
		id, reason string
	}{
		{bad.ID, "input of workflow \"wants-struct\""},
		{nan.ID, "output of workflow \"nan-output\""},
		{step.ID, "result of step \"nan\""},
		{panics.ID, "workflow \"panics\" panicked: boom"},
	} {
		run := waitRun(t, rt, tenantA, tc.id)
		require.Equal(t, durable.StatusFailed, run.Status)
		require.Contains(t, run.Error, tc.reason)
		require.Empty(t, run.Output)
		require.Zero(t, countRows(t, db, "durable_steps", tc.id), "no checkpoint stored")
	}
	require.Zero(t, ran.Load(), "a workflow whose input does not decode never runs")
	require.Empty(t, effects(t, db, "nan-step"), "the step's transaction was rolled back")
}

func TestUnknownWorkflowRunsAreLeftForRuntimesThatKnowThem(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	producer := newRuntime(t, db, nil)
	registerGreet(t, producer)
	run, err := producer.Start(ctxA, "greet", greeting{Name: "ada"})
	require.NoError(t, err)

	// A runtime without the workflow claims nothing...
	other := newRuntime(t, db, nil)
	_, err = durable.Register(other, "unrelated", func(context.Context, int) (int, error) { return 0, nil })
	require.NoError(t, err)
	runFor(t, other, 200*time.Millisecond)
	got, err := other.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusPending, got.Status)
	require.Zero(t, got.Attempt)

	// ...and one with it completes it.
	work(t, producer)
	require.Equal(t, durable.StatusCompleted, waitRun(t, producer, tenantA, run.ID).Status)
}

// runFor runs rt's workers for d.
func runFor(t testing.TB, rt *durable.Runtime, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	require.NoError(t, rt.Run(ctx))
}

func TestChangedStepOrderIsADeterminismError(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var firstRuns atomic.Int32
	v1 := newRuntime(t, db, nil)
	_, err := durable.Register(v1, "flow", func(ctx context.Context, in int) (int, error) {
		if _, err := durable.Step(ctx, "charge", func(context.Context) (int, error) { firstRuns.Add(1); return in, nil }); err != nil {
			return 0, err
		}
		return durable.WaitSignal[int](ctx, "go", durable.NoTimeout)
	})
	require.NoError(t, err)
	run, err := v1.Start(ctxA, "flow", 5)
	require.NoError(t, err)
	runUntil(t, v1, tenantA, run.ID, durable.StatusWaiting)

	// The code changes under the parked run: its first step is renamed.
	v2 := newRuntime(t, db, nil)
	_, err = durable.Register(v2, "flow", func(ctx context.Context, in int) (int, error) {
		r, err := durable.Step(ctx, "charge-card", func(context.Context) (int, error) { return in, nil })
		if err != nil {
			return 0, nil // swallowing the error does not help
		}
		return r, nil
	})
	require.NoError(t, err)
	require.NoError(t, v2.Signal(ctxA, run.ID, "go", 1))
	work(t, v2)
	done := waitRun(t, v2, tenantA, run.ID)
	require.Equal(t, durable.StatusFailed, done.Status)
	require.Contains(t, done.Error, `determinism error at step 1: recorded "step:charge", code asked for "step:charge-card"`)
	require.Equal(t, int32(1), firstRuns.Load())

	derr := &durable.DeterminismError{Seq: 1, Recorded: "step:a", Requested: "step:b"}
	require.ErrorIs(t, derr, durable.ErrDeterminism)
}

// runUntil runs rt's workers until the run has status, then stops them.
func runUntil(t testing.TB, rt *durable.Runtime, tenant, runID string, status durable.Status) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	waitStatus(t, rt, tenant, runID, status)
	cancel()
	require.NoError(t, <-done)
}

func TestRetryPolicy(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	rt := newRuntime(t, db, nil)
	policy := durable.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	var flakyCalls, brokenCalls, permanentCalls atomic.Int32
	_, err := durable.Register(rt, "retries", func(ctx context.Context, in string) (string, error) {
		switch in {
		case "flaky":
			return durable.Step(ctx, "flaky", func(context.Context) (string, error) {
				if flakyCalls.Add(1) < 3 {
					return "", errors.New("try again")
				}
				return "made it", nil
			}, durable.WithRetry(policy))
		case "broken":
			_, err := durable.Step(ctx, "broken", func(context.Context) (string, error) {
				brokenCalls.Add(1)
				return "", errors.New("always down")
			}, durable.WithRetry(policy))
			var stepErr *durable.StepError
			if errors.As(err, &stepErr) {
				return "", err
			}
			return "no step error", nil
		case "permanent":
			return durable.Step(ctx, "permanent", func(context.Context) (string, error) {
				permanentCalls.Add(1)
				return "", durable.Permanent(errors.New("card declined"))
			}, durable.WithRetry(policy))
		default: // a transactional step that fails once after writing
			run, _ := durable.CurrentRun(ctx)
			var tries int
			return durable.TxStep(ctx, "tx", func(ctx context.Context, tx pgx.Tx) (string, error) {
				tries++
				if err := effect(ctx, tx, run.RunID, "tx"); err != nil {
					return "", err
				}
				if tries == 1 {
					return "", errors.New("fails after its write")
				}
				return "committed", nil
			}, durable.WithRetry(policy))
		}
	})
	require.NoError(t, err)
	work(t, rt)

	type outcome struct {
		run  durable.Run
		step durable.StepRecord
	}
	start := func(in string) outcome {
		run := startAndWait(t, rt, "retries", in)
		steps, err := rt.Steps(ctxA, run.ID)
		require.NoError(t, err)
		require.Len(t, steps, 1)
		return outcome{run: run, step: steps[0]}
	}
	flaky := start("flaky")
	require.Equal(t, durable.StatusCompleted, flaky.run.Status)
	require.JSONEq(t, `"made it"`, string(flaky.run.Output))
	require.Equal(t, 3, flaky.step.Attempts)
	require.Equal(t, int32(3), flakyCalls.Load())

	broken := start("broken")
	require.Equal(t, durable.StatusFailed, broken.run.Status)
	require.Contains(t, broken.run.Error, `step 1 "broken" failed after 3 attempt(s): always down`)
	require.Equal(t, "failed", broken.step.Status)
	require.Equal(t, "always down", broken.step.Error)
	require.Equal(t, 3, broken.step.Attempts)
	require.Equal(t, int32(3), brokenCalls.Load())

	permanent := start("permanent")
	require.Equal(t, durable.StatusFailed, permanent.run.Status)
	require.Equal(t, "card declined", permanent.step.Error)
	require.Equal(t, 1, permanent.step.Attempts)
	require.Equal(t, int32(1), permanentCalls.Load())

	tx := start("tx")
	require.Equal(t, durable.StatusCompleted, tx.run.Status)
	require.Equal(t, 2, tx.step.Attempts)
	require.Equal(t, map[string]int{"tx": 1}, effects(t, db, tx.run.ID), "the failed try's write was rolled back")
}

func startAndWait(t testing.TB, rt *durable.Runtime, workflow string, in any) durable.Run {
	t.Helper()
	run, err := rt.StartForTenant(context.Background(), tenantA, workflow, in)
	require.NoError(t, err)
	return waitRun(t, rt, tenantA, run.ID)
}

func TestRetryBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	p := durable.RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Multiplier: 3, Jitter: 0.5}
	require.Equal(t, 100*time.Millisecond, p.Backoff(1, 0))
	require.Equal(t, 300*time.Millisecond, p.Backoff(2, 0))
	require.Equal(t, 900*time.Millisecond, p.Backoff(3, 0))
	require.Equal(t, time.Second, p.Backoff(4, 0), "capped")
	require.Equal(t, 50*time.Millisecond, p.Backoff(1, 1), "jitter takes off up to half")
	for _, r := range []float64{0.1, 0.5, 0.99} {
		d := p.Backoff(2, r)
		require.True(t, d > 150*time.Millisecond && d < 300*time.Millisecond, "%v", d)
	}
	// Defaults: 100ms doubling, 20% jitter.
	require.Equal(t, 200*time.Millisecond, durable.RetryPolicy{}.Backoff(2, 0))
	require.Equal(t, 160*time.Millisecond, durable.RetryPolicy{}.Backoff(2, 1))
}
