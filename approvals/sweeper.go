package approvals

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/sweep"
)

// Sweeper defaults.
const (
	// DefaultSweepInterval is SweeperConfig.Interval's default.
	DefaultSweepInterval = time.Minute
	// DefaultSweepBatch is SweeperConfig.BatchSize's default.
	DefaultSweepBatch = 1000
)

// SweeperConfig configures a Sweeper. Every field documents its default.
type SweeperConfig struct {
	// Interval is the pause between sweeps in Run. Default:
	// DefaultSweepInterval (one minute). Must not be negative.
	Interval time.Duration
	// BatchSize caps the requests expired by one statement, so a backlog
	// is worked off in short transactions. Default: DefaultSweepBatch
	// (1000). Must not be negative.
	BatchSize int
	// Logger receives sweep failures and counts. Default: slog.Default().
	Logger *slog.Logger
}

// Sweeper expires pending requests whose time to live has passed on the
// database's clock, across every tenant, writing an "expire" audit row for
// each. Expired requests can no longer be decided, so their actions never
// run.
//
// It needs a connection that sees every tenant: the system role (BYPASSRLS).
// Through the application role, row-level security hides every row and
// the sweeper expires nothing.
type Sweeper struct {
	db  DB
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper working through db, which should connect as
// the system role. It validates cfg; errors match ErrInvalidConfig.
func NewSweeper(db DB, cfg SweeperConfig) (*Sweeper, error) {
	if db == nil {
		return nil, errs.Config("approvals", "nil database")
	}
	if cfg.Interval < 0 || cfg.BatchSize < 0 {
		return nil, errs.Config("approvals", "negative sweep interval or batch size")
	}
	cfg.Interval = cmp.Or(cfg.Interval, DefaultSweepInterval)
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultSweepBatch)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Sweeper{db: db, cfg: cfg}, nil
}

// sweepSQL expires one batch of requests due by the database's clock.
// SKIP LOCKED leaves alone a request being decided right now: its decider
// either records a decision or, on seeing it expired, refuses; the next
// sweep takes it if it stays pending.
const sweepSQL = `
WITH due AS (
    SELECT tenant_id, id FROM platform.approvals_requests
    WHERE status = 'pending' AND expires_at <= now()
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED),
expired AS (
    UPDATE platform.approvals_requests r SET status = 'expired'
    FROM due WHERE r.tenant_id = due.tenant_id AND r.id = due.id
    RETURNING r.tenant_id, r.id)
INSERT INTO platform.approvals_audit (tenant_id, request_id, actor, action, result, status_after, recorded_at)
SELECT tenant_id, id, $2, 'expire', 'expired', 'expired', now() FROM expired`

// SweepOnce expires every pending request whose expiry time has passed, in
// batches of BatchSize (a transaction each), and returns how many it
// expired.
func (s *Sweeper) SweepOnce(ctx context.Context) (int64, error) {
	total, err := sweep.Drain(ctx, int64(s.cfg.BatchSize), func(ctx context.Context) (int64, error) {
		tag, err := s.db.Exec(ctx, sweepSQL, s.cfg.BatchSize, SystemActor)
		instruments.expired.Add(ctx, tag.RowsAffected())
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("approvals: sweep: %w", err)
	}
	return total, nil
}

// Run sweeps at once and then every Interval until ctx is done, logging
// failures and going on, and returns ctx's error.
func (s *Sweeper) Run(ctx context.Context) error {
	return sweep.Run(ctx, s.cfg.Interval, s.cfg.Logger, "approvals: expired requests", s.SweepOnce)
}
