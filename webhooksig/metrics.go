package webhooksig

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// rejections counts requests the middleware refused, through the global
// meter provider: a no-op until an application installs one.
var rejections = func() metric.Int64Counter {
	c, _ := otel.Meter("github.com/dealix/platform/webhooksig").Int64Counter("dealix.webhooksig.rejections",
		metric.WithDescription("Webhook requests refused, by verifier and reason."))
	return c
}()

// reason names the failed check for the metric: a small, fixed set.
func reason(err error) string {
	switch {
	case errors.Is(err, ErrMissingHeader):
		return "missing_header"
	case errors.Is(err, ErrMalformedHeader):
		return "malformed_header"
	case errors.Is(err, ErrMalformedBody):
		return "malformed_body"
	case errors.Is(err, ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, ErrStaleTimestamp):
		return "stale_timestamp"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrBodyTooLarge):
		return "body_too_large"
	case errors.Is(err, ErrReplayed):
		return "replayed"
	case errors.Is(err, ErrInProgress):
		return "in_progress"
	default:
		return "other"
	}
}

func recordRejection(ctx context.Context, verifier string, err error) {
	rejections.Add(ctx, 1, metric.WithAttributes(
		attribute.String("verifier", verifier), attribute.String("reason", reason(err))))
}
