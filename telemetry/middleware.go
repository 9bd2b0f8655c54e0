package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// AttrCorrelationID is the span attribute that carries the correlation id.
const AttrCorrelationID = attribute.Key("correlation.id")

// Option configures Middleware.
//
// Middleware takes functional options where the library's other packages
// take a Config struct: it wraps otelhttp, whose configuration is itself a
// list of options, and its options map one to one onto those, so a reader
// who knows otelhttp.NewMiddleware knows these. Init, which has no such
// counterpart, takes a Config.
type Option func(*middlewareConfig)

type middlewareConfig struct {
	operation string
	otelOpts  []otelhttp.Option
}

// WithOperation names the server spans' operation. Default: "http.server".
func WithOperation(name string) Option {
	return func(c *middlewareConfig) { c.operation = name }
}

// WithTracerProvider sets the tracer provider. Default: the global one.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *middlewareConfig) { c.otelOpts = append(c.otelOpts, otelhttp.WithTracerProvider(tp)) }
}

// WithMeterProvider sets the meter provider. Default: the global one.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *middlewareConfig) { c.otelOpts = append(c.otelOpts, otelhttp.WithMeterProvider(mp)) }
}

// WithPropagators sets how incoming trace context is read. Default: the
// global propagator (Init sets W3C trace context and baggage).
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *middlewareConfig) { c.otelOpts = append(c.otelOpts, otelhttp.WithPropagators(p)) }
}

// Middleware returns net/http middleware that starts a server span per
// request (otelhttp) and binds a correlation id to it: see the package
// documentation.
func Middleware(opts ...Option) func(http.Handler) http.Handler {
	cfg := middlewareConfig{operation: "http.server"}
	for _, opt := range opts {
		opt(&cfg)
	}
	return func(next http.Handler) http.Handler {
		return otelhttp.NewHandler(correlate(next), cfg.operation, cfg.otelOpts...)
	}
}

// correlate runs inside the server span: it picks or makes the correlation
// id and puts it in the context, on the span and in the response.
func correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.Header.Get(HeaderCorrelationID)
		if id == "" {
			id = r.Header.Get(HeaderRequestID)
		}
		if !ValidCorrelationID(id) {
			id = newCorrelationID(ctx)
		}
		trace.SpanFromContext(ctx).SetAttributes(AttrCorrelationID.String(id))
		w.Header().Set(HeaderCorrelationID, id)
		next.ServeHTTP(w, r.WithContext(WithCorrelationID(ctx, id)))
	})
}
