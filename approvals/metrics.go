package approvals

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// meterName is the instrumentation scope of the package's metrics. They
// go through the global meter provider, so they cost nothing until an
// application installs one (telemetry.Init does).
const meterName = "github.com/dealix/platform/approvals"

// instruments are created once, from the global provider's meter: it
// forwards to whatever provider is installed later.
var instruments = newInstruments()

type approvalInstruments struct {
	requests  metric.Int64Counter
	decisions metric.Int64Counter
	expired   metric.Int64Counter
}

func newInstruments() approvalInstruments {
	meter := otel.Meter(meterName)
	// Errors here only come from invalid instrument names, fixed below.
	requests, _ := meter.Int64Counter("dealix.approvals.requests",
		metric.WithDescription("Actions asked for, by kind and outcome (allowed, created, existing)."))
	decisions, _ := meter.Int64Counter("dealix.approvals.decisions",
		metric.WithDescription("Decide attempts, by decision and result (accepted, replayed, conflict, expired, self_approval, not_found, hook_failed)."))
	expired, _ := meter.Int64Counter("dealix.approvals.expired",
		metric.WithDescription("Pending requests expired by the sweeper."))
	return approvalInstruments{requests: requests, decisions: decisions, expired: expired}
}

func recordRequest(ctx context.Context, kind string, res Result) {
	outcome := "allowed"
	switch {
	case res.Request != nil && res.Created:
		outcome = "created"
	case res.Request != nil:
		outcome = "existing"
	}
	instruments.requests.Add(ctx, 1, metric.WithAttributes(
		attribute.String("kind", kind), attribute.String("outcome", outcome)))
}

func recordDecision(ctx context.Context, decision Status, result AuditResult) {
	instruments.decisions.Add(ctx, 1, metric.WithAttributes(
		attribute.String("decision", string(decision)), attribute.String("result", string(result))))
}

// ObservePending publishes the gauge dealix.approvals.pending: the number
// of pending requests across tenants (expired ones count until the sweeper
// marks them), counted when the metrics are collected. db must bypass row-level security (the system role);
// through the app role the count is always 0. Unregister the returned
// registration to stop.
func ObservePending(db DB) (metric.Registration, error) {
	meter := otel.Meter(meterName)
	gauge, err := meter.Int64ObservableGauge("dealix.approvals.pending",
		metric.WithDescription("Approval requests waiting for a decision, across tenants."))
	if err != nil {
		return nil, fmt.Errorf("approvals: pending gauge: %w", err)
	}
	return meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		var pending int64
		err := db.QueryRow(ctx, `SELECT count(*) FROM platform.approvals_requests
			WHERE status = 'pending'`).Scan(&pending)
		if err != nil {
			return fmt.Errorf("approvals: count pending: %w", err)
		}
		o.ObserveInt64(gauge, pending)
		return nil
	}, gauge)
}
