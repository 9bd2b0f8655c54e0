package durable

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/sweep"
)

const (
	// DefaultRetention is SweeperConfig.Retention's default.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultSweepBatchSize is SweeperConfig.BatchSize's default.
	DefaultSweepBatchSize = 1000
	// DefaultSweepInterval is SweeperConfig.Interval's default.
	DefaultSweepInterval = time.Hour
	// DefaultSweepBatchPause is SweeperConfig.BatchPause's default.
	DefaultSweepBatchPause = 100 * time.Millisecond
	// NoBatchPause, as SweeperConfig.BatchPause, runs each batch of a
	// sweep right after the one before.
	NoBatchPause time.Duration = -1
)

// SweeperConfig configures a Sweeper. The zero value is usable: every
// field documents its default.
type SweeperConfig struct {
	// Retention is how long a finished (completed, failed or cancelled)
	// run is kept after it finished, on the database's clock. Default
	// DefaultRetention (30 days). Must not be negative.
	Retention time.Duration
	// BatchSize is how many runs one DELETE removes; each batch is its
	// own short transaction. Default DefaultSweepBatchSize (1000).
	BatchSize int
	// Interval is Run's pause between sweeps. Default
	// DefaultSweepInterval (1 hour).
	Interval time.Duration
	// BatchPause is a pause between two batches of one sweep. Each batch
	// deletes BatchSize runs with their checkpoints and signals in one
	// transaction; a backlog of a million expired runs is a thousand such
	// batches, which back to back take the database from the workers
	// while they last. The pause trades the sweep's time for the
	// workers' throughput: a sweep of N batches takes about N×BatchPause
	// more. Default DefaultSweepBatchPause (100ms): it keeps the
	// workers' throughput within a tenth of what it is without a sweep,
	// where sweeping without a pause cost a fifth to a third of it, and
	// a backlog of a million runs takes about two minutes to sweep
	// (some 125 s instead of 15 to 25 s on two cores). NoBatchPause
	// sweeps without pausing; other negative values are refused.
	BatchPause time.Duration
	// Logger receives Run's failures. Default slog.Default().
	Logger *slog.Logger
}

// Sweeper deletes finished runs (with their checkpoints and signals) of
// every tenant once they are older than the retention. Give it the system
// role's pool (BYPASSRLS): under the serving role row-level security hides
// every row and it would delete nothing.
type Sweeper struct {
	db  Execer
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper on db.
func NewSweeper(db Execer, cfg SweeperConfig) (*Sweeper, error) {
	if db == nil {
		return nil, errs.Config("durable", "the sweeper's database is required")
	}
	if cfg.Retention < 0 || cfg.BatchSize < 0 || cfg.Interval < 0 || (cfg.BatchPause < 0 && cfg.BatchPause != NoBatchPause) {
		return nil, errs.Config("durable", "Retention, BatchSize, Interval and BatchPause (but for NoBatchPause) must not be negative")
	}
	cfg.Retention = cmp.Or(cfg.Retention, DefaultRetention)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultSweepBatchSize)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultSweepInterval)
	cfg.BatchPause = cmp.Or(cfg.BatchPause, DefaultSweepBatchPause)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{db: db, cfg: cfg}, nil
}

const deleteFinishedSQL = `
DELETE FROM platform.durable_runs
WHERE (tenant_id, id) IN (
    SELECT tenant_id, id FROM platform.durable_runs
    WHERE finished_at < now() - $1::bigint * interval '1 microsecond'
    LIMIT $2)`

// SweepOnce deletes every run that finished more than Retention ago, in
// batches of BatchSize, and returns how many it deleted. Batches after the
// first wait BatchPause; a context that ends during the pause stops the
// sweep at once with the context's error and the count so far.
func (s *Sweeper) SweepOnce(ctx context.Context) (int64, error) {
	total, err := sweep.DrainPaced(ctx, int64(s.cfg.BatchSize), s.cfg.BatchPause, func(ctx context.Context) (int64, error) {
		tag, err := s.db.Exec(ctx, deleteFinishedSQL, micros(s.cfg.Retention), s.cfg.BatchSize)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("durable: delete finished runs: %w", err)
	}
	return total, nil
}

// Run sweeps at once and then every Interval until ctx is done, logging
// failures, and returns ctx's error.
func (s *Sweeper) Run(ctx context.Context) error {
	return sweep.Run(ctx, s.cfg.Interval, s.cfg.Logger, "durable: deleted finished runs", s.SweepOnce)
}
