package dlq

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/sweep"
)

const (
	// DefaultSweepBatchPause is SweeperConfig.BatchPause's default.
	DefaultSweepBatchPause = 100 * time.Millisecond
	// NoBatchPause, as SweeperConfig.BatchPause (or
	// Config.CleanupBatchPause), runs each batch of a sweep right after
	// the one before.
	NoBatchPause time.Duration = -1
)

// SweeperConfig configures a Sweeper. Every field documents its default.
type SweeperConfig struct {
	// Retention is how long completed and discarded jobs are kept after
	// they finished. Default 24h.
	Retention time.Duration
	// DeadRetention is how long dead jobs are kept. Default 0: until
	// re-driven, discarded or purged.
	DeadRetention time.Duration
	// Interval is the pause between sweeps in Run. Default 5m.
	Interval time.Duration
	// BatchSize caps the jobs deleted by one statement, so a backlog is
	// worked off in short transactions. Default 5000.
	BatchSize int
	// BatchPause is a pause between two batches of one sweep. Each batch
	// deletes BatchSize rows and their index entries in one statement; a
	// backlog of a million expired jobs is two hundred of them back to
	// back, which takes the database from the workers while it lasts. A
	// pause about as long as one batch takes (tens of milliseconds) halves
	// the sweep's share of the database and doubles its time. Default
	// DefaultSweepBatchPause (100ms), as in durable and idempotency: with
	// a pause of 50ms the workers already kept 0.92x of their throughput
	// while a million expired jobs went (0.57x without), and 100ms adds
	// about 20 s per million (200 batches). NoBatchPause: each batch
	// follows the last at once.
	BatchPause time.Duration
	// Logger receives Run's failures and counts. Default slog.Default().
	Logger *slog.Logger
}

// Sweeper deletes finished jobs past their retention, across tenants. Ages
// are measured by the database's clock. A started Client runs one built
// from its Config (Retention, DeadRetention, CleanupInterval); build one
// with NewSweeper to sweep from elsewhere (a cron job, an admin tool).
//
// It needs the system role (BYPASSRLS): through the app role, row-level
// security hides every job and it deletes nothing.
type Sweeper struct {
	db  dbx.Execer
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper working through db, or an error wrapping
// ErrInvalidConfig.
func NewSweeper(db DB, cfg SweeperConfig) (*Sweeper, error) {
	if db == nil {
		return nil, errs.Config("dlq", "NewSweeper: db is nil")
	}
	if cfg.Retention < 0 || cfg.DeadRetention < 0 || cfg.Interval < 0 || cfg.BatchSize < 0 || (cfg.BatchPause < 0 && cfg.BatchPause != NoBatchPause) {
		return nil, errs.Config("dlq", "sweeper: Retention, DeadRetention, Interval, BatchSize and BatchPause (but for NoBatchPause) must not be negative")
	}
	cfg.BatchPause = cmp.Or(cfg.BatchPause, DefaultSweepBatchPause)
	cfg.Retention = cmp.Or(cfg.Retention, 24*time.Hour)
	cfg.Interval = cmp.Or(cfg.Interval, 5*time.Minute)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, 5000)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{db: db, cfg: cfg}, nil
}

const sweepSQL = `
DELETE FROM platform.dlq_jobs WHERE id IN (
    SELECT id FROM platform.dlq_jobs
    WHERE (state IN ('completed', 'discarded') AND finalized_at < now() - $1::bigint * interval '1 microsecond')
       OR ($2::bigint > 0 AND state = 'dead' AND finalized_at < now() - $2::bigint * interval '1 microsecond')
    LIMIT $3)`

// SweepOnce deletes completed and discarded jobs older than Retention and,
// when DeadRetention is set, dead jobs older than that, in batches, and
// returns how many it deleted. Batches after the first wait BatchPause.
func (s *Sweeper) SweepOnce(ctx context.Context) (int64, error) {
	total, err := sweep.DrainPaced(ctx, int64(s.cfg.BatchSize), s.cfg.BatchPause, func(ctx context.Context) (int64, error) {
		tag, err := s.db.Exec(ctx, sweepSQL, micros(s.cfg.Retention), micros(s.cfg.DeadRetention), s.cfg.BatchSize)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("dlq: sweep: %w", err)
	}
	return total, nil
}

// Run sweeps at once and then every Interval until ctx is done, logging
// failures and going on, and returns ctx's error then.
func (s *Sweeper) Run(ctx context.Context) error {
	return sweep.Run(ctx, s.cfg.Interval, s.cfg.Logger, "dlq: deleted finished jobs", s.SweepOnce)
}
