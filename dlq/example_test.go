package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dealix/platform/dlq"
)

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
