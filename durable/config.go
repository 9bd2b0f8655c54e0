package durable

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Config configures a Runtime. Only App is required.
type Config struct {
	// App is the pool of the serving role, bound by row-level security.
	// Starting runs, signals, operator calls and every step's own
	// checkpoint run on it in a transaction scoped to the run's tenant.
	// Required.
	App *pgxpool.Pool
	// System is the pool of a role with BYPASSRLS, used to claim runs
	// across tenants, renew leases and delete old runs. Optional for a
	// process that only starts and signals runs; Run and DeleteFinished
	// need it.
	System *pgxpool.Pool
	// WorkerID names this runtime in the runs it owns. Default: the host
	// name, the process id and a random suffix.
	WorkerID string
	// Lease is how long a claimed run stays owned without a heartbeat;
	// another runtime may take a run over once its lease expired.
	// Default 30s; at least 100ms.
	Lease time.Duration
	// Heartbeat is how often a running run's lease is renewed. Default
	// Lease/3; must be shorter than Lease.
	Heartbeat time.Duration
	// PollInterval is how often the workers look for claimable runs.
	// Default 1s. Starts through this runtime wake its workers at once.
	PollInterval time.Duration
	// Concurrency is how many runs this runtime executes at once.
	// Default 8.
	Concurrency int
	// Clock tells the time for leases, wake-ups, deadlines and records.
	// Default time.Now.
	Clock func() time.Time
	// Logger receives the workers' errors and run outcomes. Default
	// slog.Default().
	Logger *slog.Logger
	// TracerProvider makes the run and step spans. Default: the global
	// provider (otel.GetTracerProvider) at the time of each span.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() (Config, error) {
	if c.App == nil {
		return c, fmt.Errorf("%w: App pool is required", ErrInvalidConfig)
	}
	if c.WorkerID == "" {
		c.WorkerID = defaultWorkerID()
	}
	if c.Lease == 0 {
		c.Lease = 30 * time.Second
	}
	if c.Lease < 100*time.Millisecond {
		return c, fmt.Errorf("%w: Lease %v is shorter than 100ms", ErrInvalidConfig, c.Lease)
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.Lease / 3
	}
	if c.Heartbeat < 0 || c.Heartbeat >= c.Lease {
		return c, fmt.Errorf("%w: Heartbeat %v must be positive and shorter than Lease %v", ErrInvalidConfig, c.Heartbeat, c.Lease)
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.PollInterval < 0 {
		return c, fmt.Errorf("%w: negative PollInterval", ErrInvalidConfig)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.Concurrency < 0 {
		return c, fmt.Errorf("%w: negative Concurrency", ErrInvalidConfig)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

func (c Config) tracer() trace.Tracer {
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("github.com/dealix/platform/durable")
}

func defaultWorkerID() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
