package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// instrumentationName names the tracer and meter of this package.
const instrumentationName = "github.com/dealix/platform/telemetry"

// tracerFor uses the provider of the span already in ctx, so helpers join
// the caller's trace pipeline, and the global provider otherwise.
func tracerFor(ctx context.Context) trace.Tracer {
	if span := trace.SpanFromContext(ctx); span.SpanContext().IsValid() {
		return span.TracerProvider().Tracer(instrumentationName)
	}
	return otel.Tracer(instrumentationName)
}

// Run calls fn inside a span named name. An error fn returns is recorded
// on the span and sets its status to Error; a panic is recorded and
// re-raised.
func Run(ctx context.Context, name string, fn func(context.Context) error, attrs ...attribute.KeyValue) error {
	_, err := Execute(ctx, name, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	}, attrs...)
	return err
}

// Execute is Run for a function with a result: the shape of a gateway's
// execute() call. The span carries the correlation id; when ctx has none,
// one is bound to the span's trace id and passed to fn in its context.
func Execute[T any](ctx context.Context, name string, fn func(context.Context) (T, error), attrs ...attribute.KeyValue) (result T, err error) {
	ctx, span := tracerFor(ctx).Start(ctx, name, trace.WithAttributes(attrs...))
	defer span.End()
	id := CorrelationID(ctx)
	if id == "" {
		id = newCorrelationID(ctx)
		ctx = WithCorrelationID(ctx, id)
	}
	span.SetAttributes(AttrCorrelationID.String(id))
	defer func() {
		if r := recover(); r != nil {
			span.RecordError(fmt.Errorf("panic: %v", r))
			span.SetStatus(codes.Error, "panic")
			panic(r)
		}
	}()
	result, err = fn(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	return result, err
}
