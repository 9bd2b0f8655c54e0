package durable

import (
	"context"
	"sync"
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
	instruments.runs.Add(ctx, 1, measurementAttrs(metricKey{workflow: workflow, outcome: outcome}))
}

func recordStep(ctx context.Context, rs *runState, kind string, started time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	instruments.stepDurations.Record(ctx, rs.rt.cfg.Clock().Sub(started).Seconds(),
		measurementAttrs(metricKey{workflow: rs.workflow, kind: kind, result: result}))
}

// metricKey is one combination of a measurement's attributes: a run's
// outcome (outcome set) or a step's kind and result.
type metricKey struct {
	workflow, outcome, kind, result string
}

// attrSets holds the attribute set of each metricKey met so far, built
// once rather than at every step (sorting and hashing the attributes
// again each time): the keys are registered workflow names and fixed
// values, so there are few.
var attrSets sync.Map // metricKey -> metric.MeasurementOption

func measurementAttrs(k metricKey) metric.MeasurementOption {
	if opt, ok := attrSets.Load(k); ok {
		return opt.(metric.MeasurementOption)
	}
	var set attribute.Set
	if k.outcome != "" {
		set = attribute.NewSet(attribute.String("workflow", k.workflow), attribute.String("outcome", k.outcome))
	} else {
		set = attribute.NewSet(attribute.String("workflow", k.workflow), attribute.String("kind", k.kind),
			attribute.String("result", k.result))
	}
	opt, _ := attrSets.LoadOrStore(k, metric.WithAttributeSet(set))
	return opt.(metric.MeasurementOption)
}
