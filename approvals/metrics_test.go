package approvals_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/dealix/platform/approvals"
)

// Not parallel: it installs the global meter provider, which the package's
// instruments forward to.
func TestMetricsArePublishedThroughTheGlobalMeter(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	b := setup(t, approvals.Config{})
	ctx := context.Background()

	allowed := riskyAction(0)
	allowed.Kind, allowed.Recipients = "metrics.test", 1
	_, err := b.svc.Request(ctx, allowed)
	require.NoError(t, err)
	held := riskyAction(1)
	held.Kind = "metrics.test"
	first, err := b.svc.Request(ctx, held)
	require.NoError(t, err)
	_, err = b.svc.Request(ctx, held)
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(first.Request.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(first.Request.ID, approvals.StatusRejected, "omar"))
	require.ErrorIs(t, err, approvals.ErrAlreadyDecided)

	toExpire := riskyAction(2)
	toExpire.Kind = "metrics.test"
	_, err = b.svc.Request(ctx, toExpire)
	require.NoError(t, err)

	registration, err := approvals.ObservePending(b.db.System)
	require.NoError(t, err)
	defer func() { require.NoError(t, registration.Unregister()) }()
	rm := collect(t, reader)
	require.Equal(t, int64(1), gauge(rm, "dealix.approvals.pending"), "one request still pending")

	b.clock.Advance(30 * 24 * time.Hour)
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{Now: b.clock.Now})
	require.NoError(t, err)
	n, err := sweeper.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	rm = collect(t, reader)
	kind := attribute.String("kind", "metrics.test")
	require.Equal(t, int64(1), sum(rm, "dealix.approvals.requests", kind, attribute.String("outcome", "allowed")))
	require.Equal(t, int64(2), sum(rm, "dealix.approvals.requests", kind, attribute.String("outcome", "created")))
	require.Equal(t, int64(1), sum(rm, "dealix.approvals.requests", kind, attribute.String("outcome", "existing")))
	require.Equal(t, int64(1), sum(rm, "dealix.approvals.decisions", attribute.String("decision", "approved"), attribute.String("result", "accepted")))
	require.Equal(t, int64(1), sum(rm, "dealix.approvals.decisions", attribute.String("decision", "rejected"), attribute.String("result", "conflict")))
	require.Equal(t, int64(1), sum(rm, "dealix.approvals.expired"))
	require.Equal(t, int64(0), gauge(rm, "dealix.approvals.pending"))
}

func collect(t *testing.T, reader *sdkmetric.ManualReader) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	return rm
}

// sum adds up the points of counter name whose attributes include want.
func sum(rm metricdata.ResourceMetrics, name string, want ...attribute.KeyValue) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			data, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, p := range data.DataPoints {
				if hasAll(p.Attributes, want) {
					total += p.Value
				}
			}
		}
	}
	return total
}

func gauge(rm metricdata.ResourceMetrics, name string) int64 {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if data, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(data.DataPoints) == 1 {
				return data.DataPoints[0].Value
			}
		}
	}
	return -1
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}
