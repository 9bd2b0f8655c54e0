package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/dealix/platform/internal/rls"
)

// TenantFunc reads the tenant from a context. NewLogHandler defaults to
// the library's own context value (what tenancy.TenantFrom reads); pass
// another to log a tenant your application keeps elsewhere.
type TenantFunc func(ctx context.Context) (string, bool)

// LogHandler adds trace_id, span_id, correlation_id and tenant_id to each
// record logged with a context that carries them.
type LogHandler struct {
	next   slog.Handler
	tenant TenantFunc
}

// NewLogHandler wraps next. A nil tenant reads the tenant the library's
// middleware and tenancy.WithTenant put in the context. Attributes are
// added to the record, so they land in whatever group next has open.
func NewLogHandler(next slog.Handler, tenant TenantFunc) *LogHandler {
	if tenant == nil {
		tenant = rls.TenantFrom
	}
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
	if tenant, ok := h.tenant(ctx); ok {
		r.AddAttrs(slog.String("tenant_id", tenant))
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
