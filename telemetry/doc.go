// Package telemetry sets up OpenTelemetry for a service and ties a
// business correlation id to the trace of every request.
//
// Start-up, once in main:
//
//	tel := telemetry.Init(ctx, telemetry.Config{ServiceName: "dealix", ServiceVersion: version})
//	defer tel.Shutdown(context.WithTimeout(...))
//
// Init reads the standard OTEL_* environment variables: OTEL_TRACES_EXPORTER,
// OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER ("otlp", "console" or "none"),
// OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_PROTOCOL ("grpc" or
// "http/protobuf", the default), OTEL_SDK_DISABLED, OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES. A signal whose exporter variable is unset is
// exported over OTLP when an OTLP endpoint is set, and not at all otherwise.
// Init never fails and never blocks: when nothing is configured, or an
// exporter cannot be created, the application runs on no-op providers and
// one warning is logged. Exporters connect lazily, so an unreachable
// collector slows nothing down; Shutdown flushes within the deadline of its
// context.
//
// Per request, Middleware wraps otelhttp (one server span per request) and
// adds a correlation id: taken from X-Correlation-ID or X-Request-ID when it
// is well-formed (at most 128 characters of letters, digits and . _ : -),
// otherwise generated from the request's trace id, so the business id and
// the trace id are one. The id is put in the context (CorrelationID), on the
// server span as the attribute "correlation.id", and in the X-Correlation-ID
// response header. A malformed id is replaced, never echoed.
//
// NewLogHandler wraps any slog.Handler so every record logged with a
// context carries trace_id, span_id, correlation_id and, given a tenant
// function, tenant_id. Run and Execute put a function in a span that
// records its error; TracePool makes pgx queries child spans of the
// caller's span through otelpgx.
//
// Packages of this module publish their metrics through the global meter
// provider (otel.Meter); they work, unexported, before Init runs or without
// it:
//
//	dealix.tenancy.rate_limited     counter  requests refused with 429, by policy
//	dealix.idempotency.answers      counter  requests answered without the handler, by outcome
//	                                         (replayed, conflict, mismatch, unavailable)
//	dealix.webhooksig.rejections    counter  webhook requests refused, by verifier and reason
//	dealix.approvals.requests       counter  actions asked for, by kind and outcome
//	dealix.approvals.decisions      counter  decide attempts, by decision and result
//	dealix.approvals.expired        counter  requests expired by the sweeper
//	dealix.approvals.pending        gauge    pending requests across tenants (approvals.ObservePending)
//	dealix.dlq.attempts             counter  job attempts, by queue and outcome
//	dealix.dlq.jobs                 gauge    jobs by queue and state, across tenants (Client.ObserveQueues)
//	dealix.dlq.oldest_available_seconds gauge age of the oldest runnable job, by queue
//	dealix.durable.runs             counter  run executions ended, by workflow and outcome
//	dealix.durable.step.duration    histogram seconds per step and checkpoint, by workflow, kind, result
//
// Attributes are drawn from small fixed sets; tenants and keys never become
// attributes, so the number of series stays bounded.
package telemetry
