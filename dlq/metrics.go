package dlq

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the package's metrics. They go
// through the global meter provider: a no-op until an application installs
// one (telemetry.Init does).
const meterName = "github.com/dealix/platform/dlq"

// Outcomes of one attempt, the values of the "outcome" attribute.
const (
	outcomeCompleted = "completed"
	outcomeRetried   = "retried"
	outcomeDead      = "dead"
	outcomeSnoozed   = "snoozed"
	outcomeReleased  = "released"
)

var attempts = func() metric.Int64Counter {
	c, _ := otel.Meter(meterName).Int64Counter("dealix.dlq.attempts",
		metric.WithDescription("Job attempts, by queue and outcome (completed, retried, dead, snoozed, released)."))
	return c
}()

// attemptAttrs are a queue's attribute sets, one per outcome, built once
// when the queue's loop starts: building a set per attempt (sorting and
// copying its attributes) took a quarter of the worker's CPU time in a
// profile of no-op jobs.
type attemptAttrs map[string]metric.AddOption

func newAttemptAttrs(queue string) attemptAttrs {
	a := attemptAttrs{}
	for _, o := range []string{outcomeCompleted, outcomeRetried, outcomeDead, outcomeSnoozed, outcomeReleased} {
		a[o] = metric.WithAttributeSet(attribute.NewSet(attribute.String("queue", queue), attribute.String("outcome", o)))
	}
	return a
}

func (a attemptAttrs) record(ctx context.Context, outcome string) {
	attempts.Add(ctx, 1, a[outcome])
}

// ObserveQueues publishes, from Stats at each collection, the gauges
// dealix.dlq.jobs (by queue and state: available, running, scheduled,
// retrying, dead) and dealix.dlq.oldest_available_seconds (by queue). The
// client must be built on a pool that bypasses row-level security (the
// system role) for the counts to span tenants. Unregister the returned
// registration to stop.
func (c *Client) ObserveQueues() (metric.Registration, error) {
	meter := otel.Meter(meterName)
	jobs, err := meter.Int64ObservableGauge("dealix.dlq.jobs",
		metric.WithDescription("Jobs per queue and state, across tenants."))
	if err != nil {
		return nil, err
	}
	oldest, err := meter.Float64ObservableGauge("dealix.dlq.oldest_available_seconds",
		metric.WithDescription("Age of the oldest job that could run now, per queue."), metric.WithUnit("s"))
	if err != nil {
		return nil, err
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		stats, err := c.Stats(ctx)
		if err != nil {
			return err
		}
		for _, s := range stats {
			queue := attribute.String("queue", s.Queue)
			for state, n := range map[string]int64{
				"available": s.Available, "running": s.Running, "scheduled": s.Scheduled,
				"retrying": s.Retrying, "dead": s.Dead,
			} {
				o.ObserveInt64(jobs, n, metric.WithAttributes(queue, attribute.String("state", state)))
			}
			o.ObserveFloat64(oldest, s.OldestAvailableAge.Seconds(), metric.WithAttributes(queue))
		}
		return nil
	}, jobs, oldest)
}
