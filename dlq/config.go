package dlq

import (
	"cmp"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
)

// Config configures a Client. The zero value is valid for a client that
// only enqueues and administers; set Queues for one that also works jobs.
//
// Every time that other instances rely on — a job's run time, a lease, a
// retry's due time, a retention — is computed by the database (now() in the
// statement), so instances whose clocks differ agree on it.
type Config struct {
	// Queues are the queues this client works when started, by name. A
	// client without queues only enqueues, re-drives and reports stats.
	Queues map[string]QueueConfig
	// KnownQueues are listed by Stats even when they hold no jobs, beside
	// the queues in Queues. Optional.
	KnownQueues []string
	// MaxAttempts is the number of attempts of a job enqueued without its
	// own. Default 10.
	MaxAttempts int
	// Backoff spaces the retries of failed jobs: a failed job runs again
	// Backoff.Delay after the database's now(). Default DefaultBackoff.
	Backoff Backoff
	// PollInterval is how often an idle queue looks for jobs when no
	// notification arrives (jobs whose RunAt has come, retries, or a lost
	// LISTEN connection). Default 1s.
	PollInterval time.Duration
	// FetchCooldown is the least time between a fetch that found a queue
	// drained and the next fetch of that queue, so that jobs arriving in a
	// steady trickle are fetched in batches. It delays a job on an idle
	// queue by at most this much after the queue's last fetch. It also
	// spaces the wake-up notifications of this client's Enqueue,
	// EnqueueMany and …ForTenant calls: the enqueues of one FetchCooldown
	// share one NOTIFY. EnqueueTx notifies at the caller's commit, each
	// queue at most once per FetchCooldown, so transactions that enqueue
	// do not queue up behind the database's notify lock at commit.
	// Default 10ms.
	FetchCooldown time.Duration
	// LeaseGrace is added to a queue's Timeout to make the lease of a
	// running job: once the lease expires the job is rescued. Default 30s.
	LeaseGrace time.Duration
	// RescueInterval is how often the client looks for running jobs whose
	// lease has expired. Default 30s.
	RescueInterval time.Duration
	// Retention is how long completed and discarded jobs are kept.
	// Default 24h.
	Retention time.Duration
	// DeadRetention is how long dead jobs are kept. Default 0: until
	// re-driven, discarded or purged.
	DeadRetention time.Duration
	// CleanupInterval is how often a started client's Sweeper deletes
	// finished jobs past their retention. Default 5m.
	CleanupInterval time.Duration
	// CleanupBatchPause is that Sweeper's SweeperConfig.BatchPause: a
	// pause between two of its delete batches, so that a large backlog
	// of expired jobs is deleted beside the work rather than in its way.
	// Default DefaultSweepBatchPause (100ms); NoBatchPause for none.
	CleanupBatchPause time.Duration
	// DisableListen turns off LISTEN/NOTIFY; queues then learn of new jobs
	// only by polling.
	DisableListen bool
	// ListenConfig is the configuration of the LISTEN connection, when it
	// must differ from the pool's: behind a transaction pooler such as
	// PgBouncer (pool_mode=transaction) a LISTEN registered on a pooled
	// server connection receives nothing once the transaction ends, so give
	// it a direct connection to PostgreSQL (pgx.ParseConfig of a direct URL)
	// while the pool's queries go through the pooler. The connection only
	// runs LISTEN; any role that may connect will do. It is copied before
	// each connect. Default nil: the pool's own Config().ConnConfig. (A
	// client that works queues is still given a pool as its DB.)
	ListenConfig *pgx.ConnConfig
	// WorkerID names this client in logs. Default host name and process id.
	WorkerID string
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
}

// QueueConfig configures one queue a client works.
type QueueConfig struct {
	// Handler runs the queue's jobs. Required.
	Handler Handler
	// Concurrency is how many of the queue's jobs run at once in this
	// client. Default 10.
	Concurrency int
	// FetchBatch is the most jobs fetched in one query. Default
	// Concurrency.
	FetchBatch int
	// Timeout bounds one attempt through its context. Default 1m.
	Timeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	c.MaxAttempts = cmp.Or(c.MaxAttempts, 10)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.LeaseGrace = cmp.Or(c.LeaseGrace, 30*time.Second)
	c.FetchCooldown = cmp.Or(c.FetchCooldown, 10*time.Millisecond)
	c.RescueInterval = cmp.Or(c.RescueInterval, 30*time.Second)
	c.Retention = cmp.Or(c.Retention, 24*time.Hour)
	c.CleanupInterval = cmp.Or(c.CleanupInterval, 5*time.Minute)
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if e, ok := c.Backoff.(Exponential); ok {
		if err := e.Validate(); err != nil {
			return c, err
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = host + "-" + strconv.Itoa(os.Getpid())
	}
	for name, d := range map[string]time.Duration{
		"MaxAttempts": time.Duration(c.MaxAttempts), "PollInterval": c.PollInterval, "FetchCooldown": c.FetchCooldown, "LeaseGrace": c.LeaseGrace,
		"RescueInterval": c.RescueInterval, "Retention": c.Retention, "DeadRetention": c.DeadRetention + 1,
		"CleanupInterval": c.CleanupInterval,
	} {
		if d <= 0 {
			return c, errs.Config("dlq", "%s must be positive", name)
		}
	}
	if c.CleanupBatchPause < 0 && c.CleanupBatchPause != NoBatchPause {
		return c, errs.Config("dlq", "CleanupBatchPause must not be negative (but for NoBatchPause)")
	}
	queues := make(map[string]QueueConfig, len(c.Queues))
	for name, q := range c.Queues {
		q, err := q.withDefaults(name)
		if err != nil {
			return c, err
		}
		queues[name] = q
	}
	c.Queues = queues
	return c, nil
}

func (q QueueConfig) withDefaults(name string) (QueueConfig, error) {
	if name == "" || len(name) > 128 {
		return q, errs.Config("dlq", "queue name %q must have 1 to 128 characters", pgtext.Clean(name, 64))
	}
	if q.Handler == nil {
		return q, errs.Config("dlq", "queue %q has no handler", name)
	}
	q.Concurrency = cmp.Or(q.Concurrency, 10)
	q.FetchBatch = cmp.Or(q.FetchBatch, q.Concurrency)
	q.Timeout = cmp.Or(q.Timeout, time.Minute)
	if q.Concurrency < 0 || q.FetchBatch < 0 || q.Timeout < 0 {
		return q, errs.Config("dlq", "queue %q: Concurrency, FetchBatch and Timeout must be positive", name)
	}
	return q, nil
}
