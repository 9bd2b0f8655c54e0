package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// A request enqueues a job in its own tenant-scoped transaction, so the
// job exists only if the request's writes commit, and a worker on the
// system role runs it with the job's tenant in its context.
func ExampleClient_EnqueueTx() {
	db := pgtest.ForExample() // the app role (under RLS) and the system role (BYPASSRLS)
	quiet := slog.New(slog.DiscardHandler)
	type welcome struct {
		Email string `json:"email"`
	}

	// On the request path: the tenant comes from the context, as the
	// authentication middleware puts it there.
	app, err := dlq.NewClient(db.App, dlq.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	ctx, err := tenancy.WithTenant(context.Background(), "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a")
	if err != nil {
		panic(err)
	}
	var job dlq.Inserted
	err = tenancy.InTx(ctx, db.App, func(tx pgx.Tx) error {
		// … the request's own writes in tx …
		var err error
		job, err = app.EnqueueTx(ctx, tx, dlq.JobParams{
			Queue: "email", Kind: "welcome", Payload: welcome{Email: "ana@example.com"}, DedupKey: "welcome-ana",
		})
		return err
	})
	if err != nil {
		panic(err)
	}

	// In a worker process: the system role works every tenant's jobs.
	sent := make(chan string, 1)
	worker, err := dlq.NewClient(db.System, dlq.Config{Logger: quiet, Queues: map[string]dlq.QueueConfig{
		"email": {Concurrency: 4, Handler: dlq.Typed(func(ctx context.Context, job *dlq.Job, w welcome) error {
			tenant, _ := tenancy.TenantFrom(ctx) // the job's tenant: tenancy.InTx(ctx, …) would scope to it
			sent <- fmt.Sprintf("%s to %s for tenant %s", job.Kind, w.Email, tenant)
			return nil
		})},
	}})
	if err != nil {
		panic(err)
	}
	if err := worker.Start(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println(<-sent)
	// A soft stop: the job in hand finishes and its outcome is recorded.
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := worker.Stop(stopCtx); err != nil {
		panic(err)
	}
	info, err := worker.GetJob(context.Background(), job.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println(info.State, "after attempt", info.Attempt)
	// Output:
	// welcome to ana@example.com for tenant 0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a
	// completed after attempt 1
}

// The retry schedule of a policy without jitter.
func ExampleExponential() {
	policy := dlq.Exponential{Base: time.Second, Max: time.Minute}
	for attempt := 1; attempt <= 8; attempt++ {
		fmt.Print(policy.Delay(attempt), " ")
	}
	fmt.Println()
	// Output: 1s 2s 4s 8s 16s 32s 1m0s 1m0s
}

// A handler decides each job's fate by what it returns.
func ExampleHandlerFunc() {
	errGone := errors.New("410 Gone")
	handler := dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
		switch job.Kind {
		case "deleted-contact":
			return dlq.Discard(errGone) // dead at once, no retry
		case "rate-limited":
			return dlq.Snooze(time.Minute) // later, attempt not counted
		case "flaky":
			return errors.New("503") // retried with backoff, dead after MaxAttempts
		}
		return nil // completed
	})
	for _, kind := range []string{"deleted-contact", "rate-limited", "flaky", "ok"} {
		fmt.Printf("%s: %v\n", kind, handler.Work(context.Background(), &dlq.Job{Kind: kind}))
	}
	// Output:
	// deleted-contact: dlq: discard: 410 Gone
	// rate-limited: dlq: snooze 1m0s
	// flaky: 503
	// ok: <nil>
}

// Typed decodes the payload before the handler runs; a payload of the
// wrong shape fails the attempt with ErrPayload.
func ExampleTyped() {
	type welcome struct {
		Email string `json:"email"`
	}
	handler := dlq.Typed(func(_ context.Context, _ *dlq.Job, w welcome) error {
		fmt.Println("send to", w.Email)
		return nil
	})
	_ = handler.Work(context.Background(), &dlq.Job{ID: 1, Payload: []byte(`{"email":"ana@example.com"}`)})
	err := handler.Work(context.Background(), &dlq.Job{ID: 2, Payload: []byte(`{"mail":"x"}`)})
	fmt.Println(errors.Is(err, dlq.ErrPayload))
	// Output:
	// send to ana@example.com
	// true
}

// The body an operator POSTs to the stats handler to re-drive a queue.
func ExampleDecodeAction() {
	action, err := dlq.DecodeAction(strings.NewReader(`{"filter":{"queue":"webhooks"}}`))
	fmt.Println(action.Action, action.Filter.Queue, err)
	_, err = dlq.DecodeAction(strings.NewReader(`{"action":"purge","job_id":7}`))
	fmt.Println(err)
	// Output:
	// redrive webhooks <nil>
	// dlq: invalid action: purge takes a filter
}
