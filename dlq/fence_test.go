package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

// TestLateOutcomeOfALostLeaseIsRefusedAfterRedrive follows the sequence a
// fencing token must survive: worker A claims a job and hangs past its
// lease; the rescuer finds the lease expired and, the job being on its last
// attempt, moves it to dead; an operator re-drives it, which resets the
// attempt count; worker B claims it under attempt 1 again. A's late outcome
// — a completion or a failure — must change nothing, and B's stands.
func TestLateOutcomeOfALostLeaseIsRefusedAfterRedrive(t *testing.T) {
	t.Parallel()
	for name, late := range map[string]error{"completion": nil, "failure": errors.New("A's late failure")} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			app := newClient(t, db.App, dlq.Config{})
			sys := newClient(t, db.System, dlq.Config{})
			ctx := context.Background()
			res, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q", MaxAttempts: 1})
			require.NoError(t, err)

			startedA, releaseA := make(chan struct{}), make(chan struct{})
			workerA := newClient(t, db.System, dlq.Config{
				LeaseGrace: 10 * time.Millisecond,
				Queues: map[string]dlq.QueueConfig{"q": {Concurrency: 1, Timeout: 10 * time.Millisecond,
					Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error {
						close(startedA)
						<-releaseA // hung, deaf to its context
						return late
					})}},
			})
			require.NoError(t, workerA.Start(ctx))
			<-startedA
			// The lease expires and a rescuer (this one, or A's own at its
			// start) moves the job, on its last attempt, to dead.
			require.Eventually(t, func() bool {
				_, err := sys.Rescue(ctx)
				require.NoError(t, err)
				return jobInfo(t, sys, res.ID).State == dlq.StateDead
			}, 30*time.Second, 5*time.Millisecond, "A's lease expires")
			require.NoError(t, sys.Redrive(ctx, res.ID))

			startedB, releaseB := make(chan struct{}), make(chan struct{})
			workerB := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{"q": {Concurrency: 1,
				Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
					if job.Attempt != 1 {
						t.Errorf("B runs attempt %d, want 1 as A did", job.Attempt)
					}
					close(startedB)
					<-releaseB
					return errors.New("B's own failure")
				})}}})
			start(t, workerB)
			<-startedB

			// A wakes up and records its outcome; Stop returns once it
			// has been written (or refused).
			close(releaseA)
			require.NoError(t, workerA.Stop(ctx))
			info := jobInfo(t, sys, res.ID)
			require.Equal(t, dlq.StateRunning, info.State, "still B's")
			require.Len(t, info.Errors, 1, "only the lost lease so far")

			close(releaseB)
			info = waitState(t, sys, res.ID, dlq.StateDead)
			require.Len(t, info.Errors, 2)
			require.Equal(t, dlq.ErrLeaseExpired.Error(), info.Errors[0].Error)
			require.Equal(t, "B's own failure", info.Errors[1].Error, "B's result stands")
			require.Equal(t, 1, info.Attempt)
		})
	}
}

// TestUnstorableErrorTextIsRecordedCleaned: PostgreSQL refuses NUL in
// text and jsonb, and invalid UTF-8 in both. A handler's error holding
// either must still be recorded — cleaned — rather than fail the write and
// leave the job to be rescued later as a lost lease.
func TestUnstorableErrorTextIsRecordedCleaned(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			switch job.Kind {
			case "nul":
				return fmt.Errorf("upstream said \x00\x00 and \xff\xfe then stopped")
			case "panic":
				panic("bad \x00 value")
			default:
				return errors.New(strings.Repeat("é", 40_000))
			}
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{
		{Queue: "q", Kind: "nul", MaxAttempts: 1},
		{Queue: "q", Kind: "panic", MaxAttempts: 1},
		{Queue: "q", Kind: "long", MaxAttempts: 1},
	})
	require.NoError(t, err)
	start(t, worker)

	nul := waitState(t, worker, res[0].ID, dlq.StateDead)
	require.Len(t, nul.Errors, 1)
	require.Equal(t, "upstream said \uFFFD\uFFFD and \uFFFD then stopped", nul.Errors[0].Error)

	panicked := waitState(t, worker, res[1].ID, dlq.StateDead)
	require.Len(t, panicked.Errors, 1)
	require.True(t, panicked.Errors[0].Panic)
	require.Contains(t, panicked.Errors[0].Error, "bad \uFFFD value")

	long := waitState(t, worker, res[2].ID, dlq.StateDead)
	require.Len(t, long.Errors, 1)
	require.LessOrEqual(t, len(long.Errors[0].Error), 32<<10)
	require.True(t, strings.HasSuffix(long.Errors[0].Error, "é…"), "cut on a rune boundary")
}
