package durable_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/durable"
)

// Waits between retries grow exponentially up to a cap; Jitter -1 turns
// the random shortening off so the figures are exact.
func ExampleRetryPolicy_Backoff() {
	p := durable.RetryPolicy{MaxAttempts: 6, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, Jitter: -1}
	for attempt := 1; attempt < p.MaxAttempts; attempt++ {
		fmt.Println(attempt, p.Backoff(attempt, 0.5))
	}
	// Output:
	// 1 100ms
	// 2 200ms
	// 3 400ms
	// 4 800ms
	// 5 1s
}

// Pages of List carry an opaque cursor naming the last run seen.
func ExampleDecodeCursor() {
	cursor := durable.EncodeCursor(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), "order-42")
	at, id, err := durable.DecodeCursor(cursor)
	fmt.Println(at, id, err)
	_, _, err = durable.DecodeCursor("not a cursor")
	fmt.Println(err)
	// Output:
	// 2026-03-01 12:00:00 +0000 UTC order-42 <nil>
	// durable: invalid list cursor: not base64url
}

// A service registers its workflows, runs the workers and starts runs.
func ExampleRegister() {
	ctx := context.Background()
	app, err := pgxpool.New(ctx, "postgres://app@localhost/app")
	if err != nil {
		return
	}
	system, err := pgxpool.New(ctx, "postgres://system@localhost/app")
	if err != nil {
		return
	}
	rt, err := durable.New(durable.Config{App: app, System: system})
	if err != nil {
		return
	}
	invoice, err := durable.Register(rt, "invoice", func(ctx context.Context, orderID string) (string, error) {
		total, err := durable.Step(ctx, "price", func(ctx context.Context) (int, error) { return 4200, nil })
		if err != nil {
			return "", err
		}
		return durable.Step(ctx, "issue", func(ctx context.Context) (string, error) {
			return fmt.Sprintf("INV-%s-%d", orderID, total), nil
		})
	})
	if err != nil {
		return
	}
	go func() { _ = rt.Run(ctx) }()
	run, err := invoice.Start(ctx, "7a1c1a8e-0000-4000-8000-00000000000a", "A17", durable.WithRunID("invoice-A17"))
	if err != nil {
		return
	}
	number, err := invoice.Result(ctx, run.Tenant, run.ID)
	fmt.Println(number, err)
}
