package metrictest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/dealix/platform/internal/metrictest"
)

// An instrument created before the provider is installed, as packages do
// at start-up, still reaches the reader.
var early, _ = otel.Meter("metrictest").Int64Counter("early.count")

func TestReaderSeesGlobalInstruments(t *testing.T) {
	reader := metrictest.InstallGlobal()
	require.Same(t, reader, metrictest.InstallGlobal(), "installed once")
	ctx := context.Background()
	early.Add(ctx, 2, metric.WithAttributes(attribute.String("k", "a")))
	early.Add(ctx, 3, metric.WithAttributes(attribute.String("k", "b")))
	require.Equal(t, int64(5), reader.Sum(t, "early.count"))
	require.Equal(t, int64(3), reader.Sum(t, "early.count", attribute.String("k", "b")))
	require.Zero(t, reader.Sum(t, "early.count", attribute.String("k", "c")))

	gauge, err := otel.Meter("metrictest").Int64Gauge("level")
	require.NoError(t, err)
	gauge.Record(ctx, 7)
	v, ok := reader.Gauge(t, "level")
	require.True(t, ok)
	require.Equal(t, int64(7), v)
	_, ok = reader.Gauge(t, "absent")
	require.False(t, ok)

	hist, err := otel.Meter("metrictest").Float64Histogram("latency")
	require.NoError(t, err)
	hist.Record(ctx, 0.5, metric.WithAttributes(attribute.String("k", "a")))
	hist.Record(ctx, 1.5, metric.WithAttributes(attribute.String("k", "a")))
	hist.Record(ctx, 2.5, metric.WithAttributes(attribute.String("k", "b")))
	require.Equal(t, uint64(3), reader.HistogramCount(t, "latency"))
	require.Equal(t, uint64(2), reader.HistogramCount(t, "latency", attribute.String("k", "a")))
}
