package durable

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
)

// DB is what the runtime needs of the serving role's database handle:
// statements, pipelined batches and transactions. *pgxpool.Pool satisfies
// it (a wrapped pool will do). It is the same interface as the other
// packages' DB.
type DB = dbx.DB

// Execer runs statements: *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy
// it. The system role's handle (claims, lease renewal, the Sweeper) needs
// no more.
type Execer = dbx.Execer

// Config configures a Runtime. Only App is required.
type Config struct {
	// App is the pool of the serving role, bound by row-level security.
	// Starting runs, signals, operator calls and every step's own
	// checkpoint run on it in a transaction scoped to the run's tenant.
	// Required.
	App DB
	// System is the pool of a role with BYPASSRLS, used to claim runs
	// across tenants and renew and release their leases. Optional for a
	// process that only starts and signals runs; Run needs it.
	System Execer
	// WorkerID names this runtime in the runs it owns. Default: the host
	// name, the process id and a random suffix. At most 200 bytes of
	// UTF-8 without NUL.
	WorkerID string
	// Lease is how long a claimed run stays owned without a heartbeat;
	// another runtime may take a run over once its lease expired. Leases
	// are counted on the database's clock. Default 30s; at least 100ms.
	Lease time.Duration
	// Heartbeat is how often a running run's lease is renewed. A
	// checkpoint renews it too once it is older than Heartbeat (a younger
	// lease is left as it is, which lets the checkpoint update the run's
	// row in place). Default Lease/3; must be shorter than Lease.
	Heartbeat time.Duration
	// PollInterval is how often the workers look for claimable runs.
	// Default 1s. Starts through this runtime wake its workers at once.
	PollInterval time.Duration
	// Concurrency is how many runs this runtime executes at once.
	// Default 8.
	Concurrency int
	// Clock is this process's clock. The runtime reads it only to
	// measure its own work (the time a step takes, for metrics); it never
	// decides a lease, a wake-up, a deadline or a recorded time, which all
	// come from the database's clock (now() in the statement), so
	// runtimes whose clocks differ neither steal each other's runs nor
	// lose their own. Default time.Now.
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
		return c, errs.Config("durable", "App is required")
	}
	c.WorkerID = cmp.Or(c.WorkerID, defaultWorkerID())
	if err := pgtext.CheckText(c.WorkerID); err != nil || len(c.WorkerID) > 200 {
		return c, errs.Config("durable", "WorkerID %q must be at most 200 bytes of UTF-8 without NUL", pgtext.Clean(c.WorkerID, 64))
	}
	c.Lease = cmp.Or(c.Lease, 30*time.Second)
	if c.Lease < 100*time.Millisecond {
		return c, errs.Config("durable", "Lease %v is shorter than 100ms", c.Lease)
	}
	c.Heartbeat = cmp.Or(c.Heartbeat, c.Lease/3)
	if c.Heartbeat < 0 || c.Heartbeat >= c.Lease {
		return c, errs.Config("durable", "Heartbeat %v must be positive and shorter than Lease %v", c.Heartbeat, c.Lease)
	}
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	if c.PollInterval < 0 {
		return c, errs.Config("durable", "negative PollInterval")
	}
	c.Concurrency = cmp.Or(c.Concurrency, 8)
	if c.Concurrency < 0 {
		return c, errs.Config("durable", "negative Concurrency")
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
	return fmt.Sprintf("%s-%d-%s", pgtext.Clean(host, 100), os.Getpid(), hex.EncodeToString(b[:]))
}

// micros is d as a count of microseconds, the unit the statements add to
// the database's now() (PostgreSQL keeps time to the microsecond).
func micros(d time.Duration) int64 { return d.Microseconds() }
