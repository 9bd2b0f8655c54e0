package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutlog"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	logglobal "go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Config configures Init. Every field is optional.
type Config struct {
	// ServiceName names the service in the resource. Default:
	// OTEL_SERVICE_NAME, then the program's file name.
	ServiceName string
	// ServiceVersion is the service's version. Default: the main
	// module's version from the build information.
	ServiceVersion string
	// Logger receives the one warning Init logs when it degrades.
	// Default: slog.Default().
	Logger *slog.Logger
	// ConsoleWriter is where "console" exporters write. Default: os.Stdout.
	ConsoleWriter io.Writer
}

// Exporter names what a signal is exported with.
type Exporter string

// The exporters Init can choose for a signal.
const (
	ExporterNone     Exporter = "none"
	ExporterConsole  Exporter = "console"
	ExporterOTLPHTTP Exporter = "otlp/http"
	ExporterOTLPGRPC Exporter = "otlp/grpc"
)

// Telemetry is what Init set up.
type Telemetry struct {
	// Traces, Metrics and Logs say which exporter each signal uses;
	// ExporterNone means the global provider for it stays no-op.
	Traces, Metrics, Logs Exporter
	shutdowns             []func(context.Context) error
}

// Shutdown flushes and stops the providers Init installed. It returns when
// they are done or when ctx is done, whichever comes first.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, shutdown := range t.shutdowns {
		errs = append(errs, shutdown(ctx))
	}
	return errors.Join(errs...)
}

type signal struct {
	name string // traces, metrics, logs
	env  string // TRACES, METRICS, LOGS
}

var (
	signalTraces  = signal{"traces", "TRACES"}
	signalMetrics = signal{"metrics", "METRICS"}
	signalLogs    = signal{"logs", "LOGS"}
)

// Init installs global tracer, meter and logger providers from the
// OTEL_* environment, as the package documentation describes. It never
// returns an error: what it could not set up stays no-op, and one warning
// says why.
func Init(ctx context.Context, cfg Config) *Telemetry {
	cfg = cfg.withDefaults()
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := &Telemetry{Traces: ExporterNone, Metrics: ExporterNone, Logs: ExporterNone}
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		cfg.Logger.Info("telemetry: OTEL_SDK_DISABLED is true; traces, metrics and logs are not exported")
		return t
	}
	res, err := newResource(ctx, cfg)
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	t.Traces, err = t.installTraces(ctx, cfg, res)
	problems = appendErr(problems, err)
	t.Metrics, err = t.installMetrics(ctx, cfg, res)
	problems = appendErr(problems, err)
	t.Logs, err = t.installLogs(ctx, cfg, res)
	problems = appendErr(problems, err)

	switch {
	case len(problems) > 0:
		cfg.Logger.Warn("telemetry: running partly or wholly on no-op providers", "problems", strings.Join(problems, "; "))
	case t.Traces == ExporterNone && t.Metrics == ExporterNone && t.Logs == ExporterNone:
		cfg.Logger.Warn("telemetry: no exporter configured (set OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_TRACES_EXPORTER); running on no-op providers")
	}
	return t
}

func appendErr(problems []string, err error) []string {
	if err != nil {
		return append(problems, err.Error())
	}
	return problems
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ConsoleWriter == nil {
		c.ConsoleWriter = os.Stdout
	}
	if c.ServiceVersion == "" {
		if info, ok := debug.ReadBuildInfo(); ok {
			c.ServiceVersion = info.Main.Version
		}
	}
	return c
}

// newResource names the service: Config.ServiceName wins over
// OTEL_SERVICE_NAME, which wins over the program's name.
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	opts := []resource.Option{
		resource.WithAttributes(attribute.String("service.name", filepath.Base(os.Args[0]))),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	}
	if cfg.ServiceName != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)))
	}
	if cfg.ServiceVersion != "" {
		opts = append(opts, resource.WithAttributes(attribute.String("service.version", cfg.ServiceVersion)))
	}
	res, err := resource.New(ctx, opts...)
	if err != nil && res == nil {
		return resource.Empty(), fmt.Errorf("resource: %w", err)
	}
	if err != nil {
		return res, fmt.Errorf("resource: %w", err)
	}
	return res, nil
}

// chooseExporter reads OTEL_<SIGNAL>_EXPORTER and the OTLP protocol.
func chooseExporter(s signal) (Exporter, error) {
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_" + s.env + "_EXPORTER")))
	if i := strings.IndexByte(name, ','); i >= 0 {
		name = strings.TrimSpace(name[:i]) // one exporter per signal
	}
	if name == "" {
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_"+s.env+"_ENDPOINT") == "" {
			return ExporterNone, nil
		}
		name = "otlp"
	}
	switch name {
	case "none":
		return ExporterNone, nil
	case "console":
		return ExporterConsole, nil
	case "otlp":
		return otlpProtocol(s)
	default:
		return ExporterNone, fmt.Errorf("%s: exporter %q is not supported (otlp, console, none)", s.name, name)
	}
}

func otlpProtocol(s signal) (Exporter, error) {
	proto := os.Getenv("OTEL_EXPORTER_OTLP_" + s.env + "_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch strings.ToLower(strings.TrimSpace(proto)) {
	case "", "http/protobuf":
		return ExporterOTLPHTTP, nil
	case "grpc":
		return ExporterOTLPGRPC, nil
	default:
		return ExporterNone, fmt.Errorf("%s: OTLP protocol %q is not supported (grpc, http/protobuf)", s.name, proto)
	}
}

func (t *Telemetry) installTraces(ctx context.Context, cfg Config, res *resource.Resource) (Exporter, error) {
	kind, err := chooseExporter(signalTraces)
	if err != nil || kind == ExporterNone {
		return ExporterNone, err
	}
	var exp sdktrace.SpanExporter
	switch kind {
	case ExporterConsole:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(cfg.ConsoleWriter))
	case ExporterOTLPGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return ExporterNone, fmt.Errorf("traces: %s exporter: %w", kind, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	t.shutdowns = append(t.shutdowns, tp.Shutdown)
	return kind, nil
}

func (t *Telemetry) installMetrics(ctx context.Context, cfg Config, res *resource.Resource) (Exporter, error) {
	kind, err := chooseExporter(signalMetrics)
	if err != nil || kind == ExporterNone {
		return ExporterNone, err
	}
	var exp sdkmetric.Exporter
	switch kind {
	case ExporterConsole:
		exp, err = stdoutmetric.New(stdoutmetric.WithWriter(cfg.ConsoleWriter))
	case ExporterOTLPGRPC:
		exp, err = otlpmetricgrpc.New(ctx)
	default:
		exp, err = otlpmetrichttp.New(ctx)
	}
	if err != nil {
		return ExporterNone, fmt.Errorf("metrics: %s exporter: %w", kind, err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)), sdkmetric.WithResource(res))
	otel.SetMeterProvider(mp)
	t.shutdowns = append(t.shutdowns, mp.Shutdown)
	return kind, nil
}

func (t *Telemetry) installLogs(ctx context.Context, cfg Config, res *resource.Resource) (Exporter, error) {
	kind, err := chooseExporter(signalLogs)
	if err != nil || kind == ExporterNone {
		return ExporterNone, err
	}
	var exp sdklog.Exporter
	switch kind {
	case ExporterConsole:
		exp, err = stdoutlog.New(stdoutlog.WithWriter(cfg.ConsoleWriter))
	case ExporterOTLPGRPC:
		exp, err = otlploggrpc.New(ctx)
	default:
		exp, err = otlploghttp.New(ctx)
	}
	if err != nil {
		return ExporterNone, fmt.Errorf("logs: %s exporter: %w", kind, err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)), sdklog.WithResource(res))
	logglobal.SetLoggerProvider(lp)
	t.shutdowns = append(t.shutdowns, lp.Shutdown)
	return kind, nil
}
