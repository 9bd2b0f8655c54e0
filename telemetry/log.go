package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// TenantFunc reads the tenant from a context; wire it to tenancy.TenantFrom.
type TenantFunc func(ctx context.Context) (string, bool)

// LogHandler adds trace_id, span_id, correlation_id and tenant_id to each
// record logged with a context that carries them.
type LogHandler struct {
	next   slog.Handler
	tenant TenantFunc
}

// NewLogHandler wraps next. tenant may be nil. Attributes are added to the
// record, so they land in whatever group next has open.
func NewLogHandler(next slog.Handler, tenant TenantFunc) *LogHandler {
	return &LogHandler{next: next, tenant: tenant}
}

// Enabled reports whether next handles records at level.
func (h *LogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds the context's identifiers to r and passes it on.
func (h *LogHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := CorrelationID(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	if h.tenant != nil {
		if tenant, ok := h.tenant(ctx); ok {
			r.AddAttrs(slog.String("tenant_id", tenant))
		}
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a handler whose records carry attrs.
func (h *LogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &LogHandler{next: h.next.WithAttrs(attrs), tenant: h.tenant}
}

// WithGroup returns a handler that nests later attributes under name.
func (h *LogHandler) WithGroup(name string) slog.Handler {
	return &LogHandler{next: h.next.WithGroup(name), tenant: h.tenant}
}
