package idempotency

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// answers counts the requests the middleware answered itself instead of
// running the handler, through the global meter provider: a no-op until an
// application installs one.
var answers = func() metric.Int64Counter {
	c, _ := otel.Meter("github.com/dealix/platform/idempotency").Int64Counter("dealix.idempotency.answers",
		metric.WithDescription("Requests answered without running the handler: replayed, conflict (still running), mismatch (key reused), unavailable."))
	return c
}()

func recordAnswer(ctx context.Context, outcome string) {
	answers.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
}
