package durable_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
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

// A service registers its workflows, runs the workers and starts runs; on
// the request path the tenant travels in the context. The TxStep runs in a
// transaction scoped to the run's tenant, and its checkpoint commits in
// that same transaction.
func ExampleRegister() {
	db := pgtest.ForExample() // an application passes its own pools
	ctx := context.Background()
	rt, err := durable.New(durable.Config{App: db.App, System: db.System, PollInterval: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	invoice, err := durable.Register(rt, "invoice", func(ctx context.Context, orderID string) (string, error) {
		total, err := durable.Step(ctx, "price", func(ctx context.Context) (int, error) { return 4200, nil })
		if err != nil {
			return "", err
		}
		return durable.TxStep(ctx, "issue", func(ctx context.Context, tx pgx.Tx) (string, error) {
			var tenant string
			err := tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&tenant)
			return fmt.Sprintf("INV-%s-%d for tenant %s", orderID, total, tenant[:8]), err
		})
	})
	if err != nil {
		panic(err)
	}
	workers, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.Run(workers) }()
	defer func() { stop(); <-done }()

	// What the authentication middleware does for a request.
	reqCtx, err := tenancy.WithTenant(ctx, "7a1c1a8e-0000-4000-8000-00000000000a")
	if err != nil {
		panic(err)
	}
	run, err := invoice.Start(reqCtx, "A17", durable.WithRunID("invoice-A17"))
	if err != nil {
		panic(err)
	}
	number, err := invoice.Result(reqCtx, run.ID)
	fmt.Println(number, err)
	steps, err := rt.Steps(reqCtx, run.ID)
	if err != nil {
		panic(err)
	}
	for _, s := range steps {
		fmt.Println(s.Seq, s.Kind, s.Name, s.Status)
	}
	// Output:
	// INV-A17-4200 for tenant 7a1c1a8e <nil>
	// 1 step price completed
	// 2 tx issue completed
}
