package ratelimit

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// rateLimited counts (under the name it had when the limiter was part of
// package tenancy, so dashboards keep working) requests refused with 429, through the global meter
// provider: a no-op until an application installs one. The attribute is
// the policy (plan), never the tenant: tenants are unbounded in number.
var rateLimited = func() metric.Int64Counter {
	c, _ := otel.Meter("github.com/dealix/platform/tenancy/ratelimit").Int64Counter("dealix.tenancy.rate_limited",
		metric.WithDescription("Requests refused by the rate limiter, by policy."))
	return c
}()

func recordRateLimited(ctx context.Context, policy string) {
	rateLimited.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", policy)))
}
