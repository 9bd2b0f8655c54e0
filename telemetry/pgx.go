package telemetry

import (
	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"
)

// TracePool makes every query of pools built from cfg a span, a child of
// the span in the query's context. Query texts are recorded (they hold
// placeholders, not values); parameters are not. tp may be nil for the
// global provider. Call it before pgxpool.NewWithConfig.
func TracePool(cfg *pgxpool.Config, tp trace.TracerProvider) {
	opts := []otelpgx.Option{otelpgx.WithTrimSQLInSpanName()}
	if tp != nil {
		opts = append(opts, otelpgx.WithTracerProvider(tp))
	}
	cfg.ConnConfig.Tracer = otelpgx.NewTracer(opts...)
}
