package metrictest

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// Reader collects what the global meter provider recorded.
type Reader struct {
	reader *sdkmetric.ManualReader
}

var (
	installOnce sync.Once
	installed   *Reader
)

// InstallGlobal installs, once per process, a global meter provider backed
// by a manual reader and returns that reader.
func InstallGlobal() *Reader {
	installOnce.Do(func() {
		reader := sdkmetric.NewManualReader()
		otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
		installed = &Reader{reader: reader}
	})
	return installed
}

// Collect reads every metric recorded so far.
func (r *Reader) Collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("metrictest: collect: %v", err)
	}
	return rm
}

// Sum adds up the points of the int64 counter name whose attributes
// include every one of want.
func (r *Reader) Sum(t testing.TB, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	var total int64
	for _, m := range find(r.Collect(t), name) {
		if data, ok := m.Data.(metricdata.Sum[int64]); ok {
			for _, p := range data.DataPoints {
				if hasAll(p.Attributes, want) {
					total += p.Value
				}
			}
		}
	}
	return total
}

// Gauge returns the value of the int64 gauge name whose attributes include
// every one of want, and whether there was one.
func (r *Reader) Gauge(t testing.TB, name string, want ...attribute.KeyValue) (int64, bool) {
	t.Helper()
	for _, m := range find(r.Collect(t), name) {
		if data, ok := m.Data.(metricdata.Gauge[int64]); ok {
			for _, p := range data.DataPoints {
				if hasAll(p.Attributes, want) {
					return p.Value, true
				}
			}
		}
	}
	return 0, false
}

// HistogramCount returns how many values the float64 histogram name
// recorded with attributes that include every one of want.
func (r *Reader) HistogramCount(t testing.TB, name string, want ...attribute.KeyValue) uint64 {
	t.Helper()
	var total uint64
	for _, m := range find(r.Collect(t), name) {
		if data, ok := m.Data.(metricdata.Histogram[float64]); ok {
			for _, p := range data.DataPoints {
				if hasAll(p.Attributes, want) {
					total += p.Count
				}
			}
		}
	}
	return total
}

func find(rm metricdata.ResourceMetrics, name string) []metricdata.Metrics {
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				out = append(out, m)
			}
		}
	}
	return out
}

func hasAll(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}
