package durable

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The package's metrics go through the global meter provider: no-ops until
// an application installs one (telemetry.Init does). Attributes are the
// workflow's registered name and fixed values, never run ids or tenants.
var instruments = func() struct {
	runs          metric.Int64Counter
	stepDurations metric.Float64Histogram
} {
	meter := otel.Meter("github.com/dealix/platform/durable")
	runs, _ := meter.Int64Counter("dealix.durable.runs",
		metric.WithDescription("Run executions ended, by workflow and outcome (completed, failed, parked, stopped)."))
	steps, _ := meter.Float64Histogram("dealix.durable.step.duration",
		metric.WithDescription("Time to run a step (all tries) and record its checkpoint, by workflow, kind and result; replayed steps are not measured."),
		metric.WithUnit("s"))
	return struct {
		runs          metric.Int64Counter
		stepDurations metric.Float64Histogram
	}{runs, steps}
}()

func recordRunOutcome(ctx context.Context, workflow, outcome string) {
	instruments.runs.Add(ctx, 1, metric.WithAttributes(
		attribute.String("workflow", workflow), attribute.String("outcome", outcome)))
}

func recordStep(ctx context.Context, rs *runState, kind string, started time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	instruments.stepDurations.Record(ctx, rs.rt.cfg.Clock().Sub(started).Seconds(), metric.WithAttributes(
		attribute.String("workflow", rs.workflow), attribute.String("kind", kind), attribute.String("result", result)))
}
