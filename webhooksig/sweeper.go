package webhooksig

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/sweep"
)

const (
	// DefaultSweepBatchSize is SweeperConfig.BatchSize's default.
	DefaultSweepBatchSize = 1000
	// DefaultSweepInterval is SweeperConfig.Interval's default.
	DefaultSweepInterval = 10 * time.Minute
)

// SweeperConfig configures a Sweeper. The zero value is usable: every field
// documents its default.
type SweeperConfig struct {
	// BatchSize is how many deliveries one DELETE removes; each batch is
	// its own short transaction, so a large backlog never holds locks for
	// long. Default DefaultSweepBatchSize (1000). Must not be negative.
	BatchSize int
	// Interval is Run's pause between sweeps. Default DefaultSweepInterval
	// (10 minutes). Must not be negative.
	Interval time.Duration
	// Logger receives Run's sweep failures and counts. Default
	// slog.Default().
	Logger *slog.Logger
}

// Sweeper deletes expired deliveries from platform.webhooksig_deliveries.
// Expired rows are harmless (a claim takes them over); sweeping only keeps
// the table small. A delivery in progress under a live lease is never
// deleted, whatever its expiry. The table has no row-level security, so the
// serving role's pool will do.
type Sweeper struct {
	db  DB
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper on db, or an error wrapping
// ErrInvalidConfig.
func NewSweeper(db DB, cfg SweeperConfig) (*Sweeper, error) {
	switch {
	case db == nil:
		return nil, errs.Config("webhooksig", "sweeper: nil database")
	case cfg.BatchSize < 0:
		return nil, errs.Config("webhooksig", "sweeper: negative BatchSize %d", cfg.BatchSize)
	case cfg.Interval < 0:
		return nil, errs.Config("webhooksig", "sweeper: negative Interval %s", cfg.Interval)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultSweepBatchSize
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultSweepInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{db: db, cfg: cfg}, nil
}

// SKIP LOCKED: a delivery being claimed right now is left to the next
// sweep rather than waited for. Expiry is judged by the database's clock.
const sweepSQL = `
DELETE FROM platform.webhooksig_deliveries d
USING (SELECT verifier, delivery_id FROM platform.webhooksig_deliveries
       WHERE expires_at <= now() AND NOT (state = 'in_progress' AND lease_until > now())
       ORDER BY expires_at LIMIT $1
       FOR UPDATE SKIP LOCKED) due
WHERE d.verifier = due.verifier AND d.delivery_id = due.delivery_id`

// SweepOnce deletes every expired delivery, in batches of BatchSize, and
// returns how many it deleted.
func (s *Sweeper) SweepOnce(ctx context.Context) (int64, error) {
	total, err := sweep.Drain(ctx, int64(s.cfg.BatchSize), func(ctx context.Context) (int64, error) {
		tag, err := s.db.Exec(ctx, sweepSQL, s.cfg.BatchSize)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("webhooksig: sweep deliveries: %w", err)
	}
	return total, nil
}

// Run sweeps at once and then every Interval until ctx is done, logging
// failures, and returns ctx's error.
func (s *Sweeper) Run(ctx context.Context) error {
	return sweep.Run(ctx, s.cfg.Interval, s.cfg.Logger, "webhooksig: swept expired deliveries", s.SweepOnce)
}
