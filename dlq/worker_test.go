package dlq_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

func TestWorkerRunsJobUnderItsTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	app := newClient(t, db.App, dlq.Config{})
	var seen atomic.Value
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"email": {Handler: dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
			tenant, _ := tenancy.TenantFrom(ctx)
			seen.Store(tenant)
			return recordEffect(ctx, db.App, job.Kind)
		})},
	}})
	start(t, worker)
	ctx := context.Background()
	res, err := app.Enqueue(withTenant(t, tenantB), dlq.JobParams{Queue: "email", Kind: "welcome"})
	require.NoError(t, err)

	info := waitState(t, worker, res.ID, dlq.StateCompleted)
	require.Equal(t, 1, info.Attempt)
	require.NotNil(t, info.FinalizedAt)
	require.Equal(t, tenantB, seen.Load())
	var tenant, note string
	require.NoError(t, db.System.QueryRow(ctx, "SELECT tenant_id::text, note FROM platform.test_effects WHERE job_id = $1", res.ID).Scan(&tenant, &note))
	require.Equal(t, tenantB, tenant)
	require.Equal(t, "welcome", note)
}

func TestNotificationStartsJobWithoutPolling(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ran := make(chan int64, 100)
	worker := newClient(t, db.System, dlq.Config{
		PollInterval: time.Hour, // only the notification can wake the queue
		Queues: map[string]dlq.QueueConfig{"email": {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			ran <- job.ID
			return nil
		})}},
	})
	start(t, worker)
	// The first poll runs at start; the listener connects soon after.
	// Enqueue until a job runs at once: only a notification can start it.
	ctx := context.Background()
	require.Eventually(t, func() bool {
		res, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "email"})
		require.NoError(t, err)
		deadline := time.After(500 * time.Millisecond)
		for {
			select {
			case id := <-ran:
				if id == res.ID {
					return true
				}
			case <-deadline:
				return false
			}
		}
	}, 20*time.Second, time.Millisecond)
}

func TestPriorityAndRunAtOrderTheQueue(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	res, err := app.EnqueueManyForTenant(ctx, tenantA, []dlq.JobParams{
		{Queue: "q", Kind: "low"},
		{Queue: "q", Kind: "high", Priority: 5},
		{Queue: "q", Kind: "later", Priority: 9, RunAt: time.Now().Add(time.Hour)},
	})
	require.NoError(t, err)
	order := make(chan string, 3)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 1, Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			order <- job.Kind
			return nil
		})},
	}})
	start(t, worker)
	require.Equal(t, "high", <-order)
	require.Equal(t, "low", <-order)
	waitState(t, worker, res[1].ID, dlq.StateCompleted)
	require.Equal(t, dlq.StateAvailable, jobInfo(t, worker, res[2].ID).State, "not before its run-at")
	makeDue(t, db, res[2].ID)
	require.Equal(t, "later", <-order)
}

// TestPoisonJobBacksOffThenDiesThenRedriveSucceeds follows one job through
// its retries: each failure schedules the next attempt by the backoff
// policy from the database's clock (the run time is exactly the delay after
// the failure's recorded time), the last one moves it to the dead-letter
// state with every error kept, and a re-drive runs it again from attempt
// one.
func TestPoisonJobBacksOffThenDiesThenRedriveSucceeds(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	backoff := dlq.Exponential{Base: time.Second, Max: 4 * time.Second, Jitter: 0.5, Rand: func() float64 { return 0.75 }}
	var healthy atomic.Bool
	worker := newClient(t, db.System, dlq.Config{Backoff: backoff, Queues: map[string]dlq.QueueConfig{
		"webhooks": {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			if healthy.Load() {
				return nil
			}
			return errors.New("endpoint answered 503 on attempt " + strconv.Itoa(job.Attempt))
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueForTenant(context.Background(), tenantA, dlq.JobParams{Queue: "webhooks", MaxAttempts: 4})
	require.NoError(t, err)
	start(t, worker)

	// 1s·1.25, 2s·1.25, then the 4s cap ·1.25.
	for attempt, want := range []time.Duration{1250 * time.Millisecond, 2500 * time.Millisecond, 5 * time.Second} {
		var info *dlq.JobInfo
		require.Eventually(t, func() bool {
			info = jobInfo(t, worker, res.ID)
			return info.State == dlq.StateAvailable && len(info.Errors) == attempt+1
		}, 30*time.Second, 5*time.Millisecond)
		require.Equal(t, want, info.RunAt.Sub(info.Errors[attempt].At), "delay after attempt %d", attempt+1)
		require.Equal(t, attempt+1, info.Attempt)
		makeDue(t, db, res.ID)
	}
	info := waitState(t, worker, res.ID, dlq.StateDead)
	require.Len(t, info.Errors, 4)
	for i, e := range info.Errors {
		require.Equal(t, i+1, e.Attempt)
		require.Equal(t, "endpoint answered 503 on attempt "+strconv.Itoa(i+1), e.Error)
	}

	healthy.Store(true)
	require.NoError(t, worker.Redrive(context.Background(), res.ID))
	info = waitState(t, worker, res.ID, dlq.StateCompleted)
	require.Equal(t, 1, info.Attempt, "attempts were reset")
	require.Len(t, info.Errors, 4, "the history stays")
}

func TestExponentialBackoffSchedule(t *testing.T) {
	t.Parallel()
	plain := dlq.Exponential{Base: 100 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for attempt := 1; attempt <= 6; attempt++ {
		got = append(got, plain.Delay(attempt))
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second}, got)
	require.Equal(t, time.Second, plain.Delay(10_000), "no overflow far past the cap")

	low := dlq.Exponential{Base: time.Second, Max: time.Hour, Jitter: 0.1, Rand: func() float64 { return 0 }}
	high := dlq.Exponential{Base: time.Second, Max: time.Hour, Jitter: 0.1, Rand: func() float64 { return 0.999999 }}
	require.Equal(t, 7200*ms, low.Delay(4))
	require.InDelta(t, float64(8800*ms), float64(high.Delay(4)), float64(ms))
	// Real randomness stays within the jitter band.
	for range 1000 {
		d := dlq.DefaultBackoff.Delay(3)
		require.GreaterOrEqual(t, d, 3600*ms)
		require.LessOrEqual(t, d, 4400*ms)
	}
}

func TestDiscardAndSnooze(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			switch job.Kind {
			case "gone":
				return dlq.Discard(errors.New("410 Gone"))
			case "later":
				return dlq.Snooze(time.Hour)
			}
			return nil
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{
		{Queue: "q", Kind: "gone", MaxAttempts: 5},
		{Queue: "q", Kind: "later", MaxAttempts: 1},
	})
	require.NoError(t, err)
	start(t, worker)

	gone := waitState(t, worker, res[0].ID, dlq.StateDead)
	require.Equal(t, 1, gone.Attempt, "discarded on the first of five attempts")
	require.Len(t, gone.Errors, 1)
	require.Contains(t, gone.Errors[0].Error, "410 Gone")

	var later *dlq.JobInfo
	require.Eventually(t, func() bool {
		later = jobInfo(t, worker, res[1].ID)
		return later.State == dlq.StateAvailable && later.RunAt.After(later.CreatedAt)
	}, 30*time.Second, 5*time.Millisecond)
	// An hour after the database's now() at the snooze.
	var inHour bool
	require.NoError(t, db.System.QueryRow(context.Background(),
		"SELECT run_at BETWEEN now() + interval '50 minutes' AND now() + interval '1 hour' FROM platform.dlq_jobs WHERE id = $1", res[1].ID).Scan(&inHour))
	require.True(t, inHour, "run at %v", later.RunAt)
	require.Zero(t, later.Attempt, "a snooze does not use up an attempt")
	require.Empty(t, later.Errors)
}

func TestPanicCountsAsFailureAndWorkerGoesOn(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{Backoff: dlq.BackoffFunc(func(int) time.Duration { return 0 }), Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 1, Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			if job.Kind == "bad" {
				panic("boom")
			}
			return nil
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{
		{Queue: "q", Kind: "bad", MaxAttempts: 2, Priority: 1},
		{Queue: "q", Kind: "good"},
	})
	require.NoError(t, err)
	start(t, worker)
	bad := waitState(t, worker, res[0].ID, dlq.StateDead)
	require.Len(t, bad.Errors, 2)
	for _, e := range bad.Errors {
		require.True(t, e.Panic)
		require.Contains(t, e.Error, "boom")
		require.Contains(t, e.Error, "dlq: handler panicked")
		require.Contains(t, e.Error, "goroutine", "the stack is kept")
	}
	waitState(t, worker, res[1].ID, dlq.StateCompleted)
}

func TestTimeoutEndsTheHandlersContext(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Timeout: 50 * time.Millisecond, Handler: dlq.HandlerFunc(func(ctx context.Context, _ *dlq.Job) error {
			<-ctx.Done()
			return ctx.Err()
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueForTenant(context.Background(), tenantA, dlq.JobParams{Queue: "q", MaxAttempts: 1})
	require.NoError(t, err)
	start(t, worker)
	info := waitState(t, worker, res.ID, dlq.StateDead)
	require.Equal(t, context.DeadlineExceeded.Error(), info.Errors[0].Error)
}

type webhook struct {
	URL   string `json:"url"`
	Event string `json:"event"`
}

func TestPayloadThatDoesNotDecodeFailsTheJobNotTheWorker(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var delivered atomic.Int64
	worker := newClient(t, db.System, dlq.Config{Backoff: dlq.BackoffFunc(func(int) time.Duration { return 0 }), Queues: map[string]dlq.QueueConfig{
		"webhooks": {Concurrency: 1, Handler: dlq.Typed(func(_ context.Context, _ *dlq.Job, w webhook) error {
			require.NotEmpty(t, w.URL)
			delivered.Add(1)
			return nil
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{
		{Queue: "webhooks", Payload: `a string, not an object`, MaxAttempts: 2},
		{Queue: "webhooks", Payload: map[string]any{"url": "https://example.test/h", "extra": 1}, MaxAttempts: 2},
		{Queue: "webhooks", Payload: webhook{URL: "https://example.test/h", Event: "deal.won"}},
	})
	require.NoError(t, err)
	start(t, worker)
	for _, id := range []int64{res[0].ID, res[1].ID} {
		info := waitState(t, worker, id, dlq.StateDead)
		require.Len(t, info.Errors, 2)
		require.Contains(t, info.Errors[1].Error, dlq.ErrPayload.Error())
		require.False(t, info.Errors[1].Panic)
	}
	require.True(t, strings.Contains(jobInfo(t, worker, res[1].ID).Errors[0].Error, `unknown field "extra"`))
	waitState(t, worker, res[2].ID, dlq.StateCompleted)
	require.Equal(t, int64(1), delivered.Load())
}
