package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/telemetry"
	"github.com/dealix/platform/tenancy"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
}

type recorder struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newRecorder() recorder {
	spans := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	return recorder{
		spans:  spans,
		tp:     sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		reader: reader,
		mp:     sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}
}

func (r recorder) middleware() func(http.Handler) http.Handler {
	return telemetry.Middleware(telemetry.WithTracerProvider(r.tp), telemetry.WithMeterProvider(r.mp))
}

func attr(span sdktrace.ReadOnlySpan, key attribute.Key) (string, bool) {
	for _, kv := range span.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit(), true
		}
	}
	return "", false
}

func spansOfKind(spans []sdktrace.ReadOnlySpan, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == kind {
			out = append(out, s)
		}
	}
	return out
}

func TestRequestSpanCorrelationHeaderLogAndQuery(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	db := pgtest.New(t)
	poolCfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	telemetry.TracePool(poolCfg, rec.tp)
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	require.NoError(t, err)
	defer pool.Close()

	var logs bytes.Buffer
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&logs, nil), func(context.Context) (string, bool) {
		return "8d0c9f5e-3c71-4a4e-9d33-0a1b2c3d4e5f", true
	}))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var one int
		if err := pool.QueryRow(r.Context(), "SELECT 1").Scan(&one); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		logger.InfoContext(r.Context(), "order placed")
		w.WriteHeader(http.StatusCreated)
	})
	srv := httptest.NewServer(rec.middleware()(handler))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/orders", nil)
	req.Header.Set("X-Correlation-ID", "order-42.retry_1:abc")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Equal(t, "order-42.retry_1:abc", resp.Header.Get("X-Correlation-ID"))

	servers := spansOfKind(rec.spans.Ended(), trace.SpanKindServer)
	require.Len(t, servers, 1, "one request, one server span")
	server := servers[0]
	id, ok := attr(server, telemetry.AttrCorrelationID)
	require.True(t, ok)
	require.Equal(t, "order-42.retry_1:abc", id)

	clients := spansOfKind(rec.spans.Ended(), trace.SpanKindClient)
	require.NotEmpty(t, clients, "the query is traced")
	var query sdktrace.ReadOnlySpan
	for _, c := range clients {
		require.Equal(t, server.SpanContext().TraceID(), c.SpanContext().TraceID())
		require.True(t, descendsFrom(rec.spans.Ended(), c, server), "%q is under the request span", c.Name())
		if stmt, ok := attr(c, "db.query.text"); ok && stmt == "SELECT 1" {
			query = c
		}
	}
	require.NotNil(t, query, "a span carries the query text")
	require.Equal(t, server.SpanContext().SpanID(), query.Parent().SpanID(), "the query is a direct child of the request span")

	var line map[string]any
	require.NoError(t, json.Unmarshal(logs.Bytes(), &line))
	require.Equal(t, "order-42.retry_1:abc", line["correlation_id"])
	require.Equal(t, server.SpanContext().TraceID().String(), line["trace_id"])
	require.Equal(t, server.SpanContext().SpanID().String(), line["span_id"])
	require.Equal(t, "8d0c9f5e-3c71-4a4e-9d33-0a1b2c3d4e5f", line["tenant_id"])

	var rm metricdata.ResourceMetrics
	require.NoError(t, rec.reader.Collect(context.Background(), &rm))
	require.Contains(t, metricNames(rm), "http.server.request.duration")
}

// descendsFrom reports whether span's chain of parents reaches ancestor.
func descendsFrom(all []sdktrace.ReadOnlySpan, span, ancestor sdktrace.ReadOnlySpan) bool {
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range all {
		byID[s.SpanContext().SpanID()] = s
	}
	for cur := span; cur != nil; cur = byID[cur.Parent().SpanID()] {
		if cur.Parent().SpanID() == ancestor.SpanContext().SpanID() {
			return true
		}
	}
	return false
}

func metricNames(rm metricdata.ResourceMetrics) []string {
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	return names
}

func TestCorrelationIDGeneratedFromTraceIDAndGarbageNeverEchoed(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	var seen []string
	srv := httptest.NewServer(rec.middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, telemetry.CorrelationID(r.Context()))
	})))
	defer srv.Close()

	// Values a real client can send; control characters are covered
	// below and by FuzzCorrelationHeader, since net/http clients refuse
	// to send them.
	for _, injected := range []string{
		"",
		strings.Repeat("a", telemetry.MaxCorrelationIDLength+1),
		"abc\tdef",
		"abc def",
		"abc\"<script>",
		"é",
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if injected != "" {
			req.Header["X-Correlation-ID"] = []string{injected}
		}
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		got := resp.Header.Get("X-Correlation-ID")
		require.NotEqual(t, injected, got)
		require.True(t, telemetry.ValidCorrelationID(got), "%q", got)
		require.Len(t, got, 32, "a trace id")
		require.Equal(t, got, seen[len(seen)-1], "the handler sees the id the client gets")
		servers := spansOfKind(rec.spans.Ended(), trace.SpanKindServer)
		require.Equal(t, servers[len(servers)-1].SpanContext().TraceID().String(), got, "bound to the trace id")
	}

	for _, injected := range []string{"abc\x01def", "line\r\nX-Evil: 1", "nul\x00"} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["X-Correlation-Id"] = []string{injected}
		w := httptest.NewRecorder()
		rec.middleware()(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})).ServeHTTP(w, req)
		got := w.Header().Get("X-Correlation-ID")
		require.True(t, telemetry.ValidCorrelationID(got), "%q", got)
		require.NotContains(t, got, injected)
	}

	// X-Request-ID is used when X-Correlation-ID is absent.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-Request-ID", "req-7")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "req-7", resp.Header.Get("X-Correlation-ID"))
}

func TestValidCorrelationIDBoundaries(t *testing.T) {
	t.Parallel()
	require.True(t, telemetry.ValidCorrelationID(strings.Repeat("a", telemetry.MaxCorrelationIDLength)))
	require.False(t, telemetry.ValidCorrelationID(strings.Repeat("a", telemetry.MaxCorrelationIDLength+1)))
	require.False(t, telemetry.ValidCorrelationID(""))
	require.True(t, telemetry.ValidCorrelationID("A-z_0.9:x"))
	for _, c := range []string{"\n", "\r", "\t", " ", "/", "=", "\x7f", "\x00"} {
		require.False(t, telemetry.ValidCorrelationID("a"+c+"b"), "%q", c)
	}
}

func FuzzCorrelationHeader(f *testing.F) {
	for _, seed := range []string{"abc", "", "a\nb", strings.Repeat("x", 200), "id:1.2_3-4"} {
		f.Add(seed)
	}
	handler := telemetry.Middleware(telemetry.WithTracerProvider(noop.NewTracerProvider()))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, id string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["X-Correlation-Id"] = []string{id}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Correlation-ID")
		require.True(t, telemetry.ValidCorrelationID(got), "response id %q", got)
		if telemetry.ValidCorrelationID(id) {
			require.Equal(t, id, got)
		} else {
			require.NotEqual(t, id, got)
		}
	})
}

func TestExecuteRecordsErrorsAndBindsCorrelation(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	ctx, parent := rec.tp.Tracer("test").Start(context.Background(), "request")
	boom := errors.New("gateway refused")

	var inner string
	_, err := telemetry.Execute(ctx, "gateway.execute", func(ctx context.Context) (int, error) {
		inner = telemetry.CorrelationID(ctx)
		return 0, boom
	}, attribute.String("gateway.action", "send_email"))
	require.ErrorIs(t, err, boom)
	parent.End()

	var span sdktrace.ReadOnlySpan
	for _, s := range rec.spans.Ended() {
		if s.Name() == "gateway.execute" {
			span = s
		}
	}
	require.NotNil(t, span)
	require.Equal(t, codes.Error, span.Status().Code)
	require.Equal(t, "gateway refused", span.Status().Description)
	require.Len(t, span.Events(), 1, "the error is recorded as an event")
	id, _ := attr(span, telemetry.AttrCorrelationID)
	require.Equal(t, span.SpanContext().TraceID().String(), id)
	require.Equal(t, id, inner)
	action, _ := attr(span, "gateway.action")
	require.Equal(t, "send_email", action)
	require.Equal(t, parent.SpanContext().SpanID(), span.Parent().SpanID())

	// An existing correlation id is kept; success leaves the status unset.
	ctx = telemetry.WithCorrelationID(ctx, "case-9")
	require.NoError(t, telemetry.Run(ctx, "step", func(context.Context) error { return nil }))
	last := rec.spans.Ended()[len(rec.spans.Ended())-1]
	id, _ = attr(last, telemetry.AttrCorrelationID)
	require.Equal(t, "case-9", id)
	require.Equal(t, codes.Unset, last.Status().Code)
}

func TestExecuteRecordsAndRepanics(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	ctx, parent := rec.tp.Tracer("test").Start(context.Background(), "request")
	defer parent.End()
	require.PanicsWithValue(t, "kaboom", func() {
		_ = telemetry.Run(ctx, "explodes", func(context.Context) error { panic("kaboom") })
	})
	ended := rec.spans.Ended()
	require.Len(t, ended, 1)
	require.Equal(t, codes.Error, ended[0].Status().Code)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// capture returns a logger and the buffer its text lines go to.
func capture() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

// resetGlobals puts the global providers back to no-op after a test that
// let Init install its own.
func resetGlobals(t *testing.T) {
	t.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
	})
}

func TestInitWithUnreachableCollectorKeepsServing(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			resetGlobals(t)
			addr := closedPort(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
			logger, logs := capture()

			tel := telemetry.Init(context.Background(), telemetry.Config{ServiceName: "svc", Logger: logger})
			want := telemetry.ExporterOTLPHTTP
			if protocol == "grpc" {
				want = telemetry.ExporterOTLPGRPC
			}
			require.Equal(t, want, tel.Traces)
			require.Equal(t, want, tel.Metrics)
			require.Equal(t, want, tel.Logs)
			require.Empty(t, logs.String(), "a configured exporter is not a warning")

			srv := httptest.NewServer(telemetry.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusNoContent)
			})))
			defer srv.Close()
			for range 3 {
				resp, err := srv.Client().Get(srv.URL)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusNoContent, resp.StatusCode)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- tel.Shutdown(ctx) }()
			select {
			case <-done: // an error is expected: nothing received the spans
			case <-time.After(20 * time.Second):
				t.Fatal("Shutdown did not return after its deadline passed")
			}
		})
	}
}

func TestInitWithNothingConfiguredWarnsOnce(t *testing.T) {
	resetGlobals(t)
	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_SDK_DISABLED"} {
		t.Setenv(name, "")
	}
	logger, logs := capture()
	tel := telemetry.Init(context.Background(), telemetry.Config{Logger: logger})
	require.Equal(t, telemetry.ExporterNone, tel.Traces)
	require.Equal(t, telemetry.ExporterNone, tel.Metrics)
	require.Equal(t, telemetry.ExporterNone, tel.Logs)
	require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	require.Contains(t, logs.String(), "no exporter configured")
	require.NoError(t, tel.Shutdown(context.Background()))
}

func TestInitWithUnsupportedExporterDegradesWithOneWarning(t *testing.T) {
	resetGlobals(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_LOGS_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	logger, logs := capture()
	tel := telemetry.Init(context.Background(), telemetry.Config{Logger: logger})
	require.Equal(t, telemetry.ExporterNone, tel.Traces)
	require.Equal(t, telemetry.ExporterNone, tel.Logs)
	require.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	require.Contains(t, logs.String(), `exporter \"zipkin\" is not supported`)
	require.Contains(t, logs.String(), `protocol \"http/json\" is not supported`)
}

func TestInitConsoleExporterWritesSpans(t *testing.T) {
	resetGlobals(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	t.Setenv("OTEL_LOGS_EXPORTER", "none")
	var out bytes.Buffer
	logger, _ := capture()
	tel := telemetry.Init(context.Background(), telemetry.Config{ServiceName: "console-svc", ServiceVersion: "1.2.3", Logger: logger, ConsoleWriter: &out})
	require.Equal(t, telemetry.ExporterConsole, tel.Traces)

	require.NoError(t, telemetry.Run(context.Background(), "console-span", func(context.Context) error { return nil }))
	require.NoError(t, tel.Shutdown(context.Background()))
	require.Contains(t, out.String(), `"Name":"console-span"`)
	require.Contains(t, out.String(), "console-svc")
	require.Contains(t, out.String(), "1.2.3")
}

func TestSDKDisabled(t *testing.T) {
	resetGlobals(t)
	t.Setenv("OTEL_SDK_DISABLED", "true")
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	var out bytes.Buffer
	logger, logs := capture()
	tel := telemetry.Init(context.Background(), telemetry.Config{Logger: logger, ConsoleWriter: &out})
	require.Equal(t, telemetry.ExporterNone, tel.Traces)
	require.NotContains(t, logs.String(), "level=WARN")
	require.NoError(t, telemetry.Run(context.Background(), "x", func(context.Context) error { return nil }))
	require.NoError(t, tel.Shutdown(context.Background()))
	require.Empty(t, out.String())
}

func TestLogHandlerWithoutContextValues(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil), nil)).With("component", "worker")
	logger.InfoContext(context.Background(), "idle")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, "worker", line["component"])
	for _, key := range []string{"trace_id", "span_id", "correlation_id", "tenant_id"} {
		require.NotContains(t, line, key)
	}
}

func TestLogHandlerReadsTheLibrarysTenantByDefault(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	logger := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&buf, nil), nil))
	ctx, err := tenancy.WithTenant(context.Background(), "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a")
	require.NoError(t, err)
	logger.InfoContext(ctx, "scoped")
	var line map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
	require.Equal(t, "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a", line["tenant_id"])
}

func BenchmarkMiddleware(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder()))
	b.Run("bare", func(b *testing.B) { benchHandler(b, bare) })
	b.Run("otelhttp", func(b *testing.B) {
		benchHandler(b, telemetry.Middleware(telemetry.WithTracerProvider(noop.NewTracerProvider()))(bare))
	})
	b.Run("otelhttp+sdk", func(b *testing.B) {
		benchHandler(b, telemetry.Middleware(telemetry.WithTracerProvider(tp))(bare))
	})
}

func benchHandler(b *testing.B, h http.Handler) {
	req := httptest.NewRequest(http.MethodGet, "/orders", nil)
	req.Header.Set("X-Correlation-ID", "bench-1")
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		_, _ = io.Copy(io.Discard, rec.Body)
	}
}
