package durable_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/dealix/platform/internal/pgtest"
)

// Not parallel: it replaces the global tracer provider while no other test
// runs.
func TestSpansPerRunAndStepThroughTheGlobalProvider(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	t.Cleanup(func() { otel.SetTracerProvider(previous) })

	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	run, err := wf.Start(ctxA, greeting{Name: "ada"})
	require.NoError(t, err)
	work(t, rt)
	_, err = wf.Result(ctxA, run.ID)
	require.NoError(t, err)
	require.NoError(t, provider.ForceFlush(ctx))

	var runSpan sdktrace.ReadOnlySpan
	var steps []sdktrace.ReadOnlySpan
	for _, s := range recorder.Ended() {
		switch s.Name() {
		case "durable.run greet":
			runSpan = s
		case "durable.step upper", "durable.step greet":
			steps = append(steps, s)
		}
	}
	require.NotNil(t, runSpan, "a span per run")
	attrs := attrMap(runSpan.Attributes())
	require.Equal(t, run.ID, attrs["durable.run_id"])
	require.Equal(t, tenantA, attrs["durable.tenant"])
	require.Equal(t, "completed", attrs["durable.outcome"])
	require.Len(t, steps, 2, "a span per step")
	for i, s := range steps {
		require.Equal(t, runSpan.SpanContext().SpanID(), s.Parent().SpanID(), "steps are children of the run")
		stepAttrs := attrMap(s.Attributes())
		require.Equal(t, fmt.Sprint(i+1), stepAttrs["durable.step.seq"])
		require.Equal(t, "false", stepAttrs["durable.step.replayed"])
	}
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}
