package launchgates_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
)

// faultQueue is a real queue on the reference server's database whose
// handler fails while a switch is on, as the intake domain's does.
type faultQueue struct {
	client  *dlq.Client
	failing atomic.Bool
	stuck   atomic.Bool // the fix does not take: the handler keeps failing
	done    atomic.Int32
}

const faultQueueName = "gate-fault-probe"

func newFaultQueue(t *testing.T, e *env) *faultQueue {
	t.Helper()
	q := &faultQueue{}
	client, err := dlq.NewClient(e.db.System, dlq.Config{
		Queues: map[string]dlq.QueueConfig{faultQueueName: {Concurrency: 1, Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error {
			if q.failing.Load() || q.stuck.Load() {
				return errors.New("injected failure")
			}
			q.done.Add(1)
			return nil
		})}},
		MaxAttempts:  2,
		Backoff:      dlq.Exponential{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond},
		PollInterval: 20 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	q.client = client
	return q
}

func (q *faultQueue) check(tenant string) launchgates.WebhookFault {
	return launchgates.WebhookFault{
		Fail: q.failing.Store,
		Deliver: func(ctx context.Context) error {
			_, err := q.client.EnqueueForTenant(ctx, tenant, dlq.JobParams{Queue: faultQueueName, Kind: "probe"})
			return err
		},
		Dead: func(ctx context.Context) (int64, error) {
			stats, err := q.client.Stats(ctx)
			for _, s := range stats {
				if s.Queue == faultQueueName {
					return s.Dead, err
				}
			}
			return 0, err
		},
		Redrive: func(ctx context.Context) (int64, error) {
			return q.client.RedriveWhere(ctx, dlq.Filter{Queue: faultQueueName})
		},
		Done: func(context.Context) (bool, error) { return q.done.Load() > 0, nil },
		Poll: 20 * time.Millisecond,
	}
}

func TestWebhookFaultLandsDeadAndIsRedriven(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := newFaultQueue(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := q.check(e.tenant).Run(ctx)
	if r.Status != gates.Closed || !strings.Contains(r.Evidence, "re-drove 1") || !strings.Contains(r.Evidence, "dead letters back to 0") {
		t.Fatalf("fault injection: %+v", r)
	}
	if q.done.Load() != 1 || q.failing.Load() {
		t.Fatalf("effect done %d times, handler failing %v: want once, and switched back", q.done.Load(), q.failing.Load())
	}
}

func TestWebhookFaultReportsAFixThatDoesNotTake(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := newFaultQueue(t, e)
	q.stuck.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := q.check(e.tenant).Run(ctx)
	if r.Status != gates.Open || !strings.Contains(r.Reason, "re-driven delivery's effect") {
		t.Fatalf("a re-drive that fails again: %+v", r)
	}
	if r := (launchgates.WebhookFault{}).Run(ctx); r.Status != gates.Open {
		t.Fatalf("an unconnected fault injection: %+v", r)
	}
}
