package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

func TestSleepOutlivesARestart(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var before, after atomic.Int32
	register := func(rt *durable.Runtime) {
		_, err := durable.Register(rt, "nap", func(ctx context.Context, in int) (string, error) {
			if _, err := durable.Step(ctx, "before", func(context.Context) (int, error) { return int(before.Add(1)), nil }); err != nil {
				return "", err
			}
			if err := durable.Sleep(ctx, time.Hour); err != nil {
				return "", err
			}
			_, err := durable.Step(ctx, "after", func(context.Context) (int, error) { return int(after.Add(1)), nil })
			return "rested", err
		})
		require.NoError(t, err)
	}
	first := newRuntime(t, db, nil)
	register(first)
	run, err := first.Start(ctxA, "nap", 0)
	require.NoError(t, err)
	runUntil(t, first, tenantA, run.ID, durable.StatusSleeping)

	sleeping, err := first.Get(ctxA, run.ID)
	require.NoError(t, err)
	// The wake-up time is an hour after the checkpoint, both on the
	// database's clock, and recorded as the sleep's result.
	steps, err := first.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.Equal(t, time.Hour, sleeping.WakeAt.Sub(steps[1].CreatedAt), "wake-up %v", sleeping.WakeAt)
	var recorded time.Time
	require.NoError(t, json.Unmarshal(steps[1].Output, &recorded))
	require.True(t, recorded.Equal(sleeping.WakeAt), "recorded %v, run %v", recorded, sleeping.WakeAt)
	require.Empty(t, sleeping.Owner, "a sleeping run holds no worker")

	// A new process, before the wake-up time: nothing to do.
	second := newRuntime(t, db, nil)
	register(second)
	runFor(t, second, 150*time.Millisecond)
	still, err := second.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusSleeping, still.Status)
	require.Equal(t, int64(1), still.Attempt)

	travel(t, db, run.ID, time.Hour)
	work(t, second)
	done := waitRun(t, second, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.JSONEq(t, `"rested"`, string(done.Output))
	require.Equal(t, int32(1), before.Load(), "the step before the sleep ran once")
	require.Equal(t, int32(1), after.Load())
	steps, err = second.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"before", "sleep", "after"}, stepNames(steps))
}

func stepNames(steps []durable.StepRecord) []string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = s.Name
	}
	return names
}

type vote struct {
	By     string `json:"by"`
	Accept bool   `json:"accept"`
}

// registerVotes registers a workflow waiting for two "vote" signals.
func registerVotes(t testing.TB, rt *durable.Runtime, timeout time.Duration) {
	t.Helper()
	_, err := durable.Register(rt, "votes", func(ctx context.Context, in int) ([]string, error) {
		var got []string
		for range 2 {
			v, err := durable.WaitSignal[vote](ctx, "vote", timeout)
			if errors.Is(err, durable.ErrSignalTimeout) {
				return append(got, "timed out"), nil
			}
			if err != nil {
				return nil, err
			}
			got = append(got, v.By)
		}
		return got, nil
	})
	require.NoError(t, err)
}

func TestSignalsSentBeforeTheWaitAreKept(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	registerVotes(t, rt, time.Hour)
	run, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	require.NoError(t, rt.Signal(ctxA, run.ID, "vote", vote{By: "ada", Accept: true}))
	require.NoError(t, rt.Signal(ctxA, run.ID, "vote", vote{By: "bob"}))

	work(t, rt)
	done := waitRun(t, rt, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.JSONEq(t, `["ada","bob"]`, string(done.Output), "consumed oldest first")
}

func TestSignalSentWhileTheRunWaits(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	registerVotes(t, rt, durable.NoTimeout)
	run, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	work(t, rt)

	waiting := waitStatus(t, rt, tenantA, run.ID, durable.StatusWaiting)
	require.Equal(t, "vote", waiting.WaitingFor)
	require.Empty(t, waiting.Owner, "a waiting run holds no worker")
	require.True(t, waiting.WakeAt.IsZero(), "no deadline")

	// Sent in the caller's transaction: a rolled-back one sends nothing.
	err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		require.NoError(t, rt.SignalTx(ctx, tx, run.ID, "vote", vote{By: "ghost"}))
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	require.NoError(t, rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		return rt.SignalTx(ctx, tx, run.ID, "vote", vote{By: "ada"})
	}))
	waitStatus(t, rt, tenantA, run.ID, durable.StatusWaiting)
	require.NoError(t, rt.Signal(ctxA, run.ID, "vote", vote{By: "bob"}))

	done := waitRun(t, rt, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.JSONEq(t, `["ada","bob"]`, string(done.Output))
	require.ErrorIs(t, rt.Signal(ctxA, run.ID, "vote", vote{}), durable.ErrRunFinished)
}

func TestSignalWaitTimesOut(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	registerVotes(t, rt, time.Hour)
	run, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	work(t, rt)

	// The deadline is an hour after the wait parked the run, on the
	// database's clock.
	waiting := waitStatus(t, rt, tenantA, run.ID, durable.StatusWaiting)
	require.Equal(t, time.Hour, waiting.WakeAt.Sub(waiting.UpdatedAt), "deadline %v", waiting.WakeAt)
	// A signal of another name does not end the wait, nor does the time
	// before the deadline.
	require.NoError(t, rt.Signal(ctxA, run.ID, "other", 1))
	travel(t, db, run.ID, 59*time.Minute)
	time.Sleep(100 * time.Millisecond) // a few of the workers' polls
	require.Equal(t, durable.StatusWaiting, waitStatus(t, rt, tenantA, run.ID, durable.StatusWaiting).Status)

	travel(t, db, run.ID, time.Minute)
	done := waitRun(t, rt, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.JSONEq(t, `["timed out"]`, string(done.Output))
	steps, err := rt.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, "timeout", steps[0].Status)
}

func TestSignalTxRefusesBadRequests(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	registerVotes(t, rt, time.Minute)
	run, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)

	err = pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error { return rt.SignalTx(ctx, tx, run.ID, "vote", 1) })
	require.ErrorIs(t, err, durable.ErrNoTenant)
	require.ErrorIs(t, rt.Signal(ctxA, "missing", "vote", 1), durable.ErrRunNotFound)
	require.ErrorIs(t, rt.Signal(ctxA, run.ID, "vote", make(chan int)), durable.ErrEncode)
	require.ErrorIs(t, rt.Signal(ctxA, run.ID, "", 1), durable.ErrInvalidName)
	require.Zero(t, countRows(t, db, "durable_signals", run.ID))
}
