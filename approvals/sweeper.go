package approvals

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealix/platform/internal/sweep"
)

// Sweeper defaults.
const (
	// DefaultSweepInterval is SweeperConfig.Interval's default.
	DefaultSweepInterval = time.Minute
	// DefaultSweepBatch is SweeperConfig.BatchSize's default.
	DefaultSweepBatch = 1000
)

// Execer runs a statement; *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// SweeperConfig configures a Sweeper. Every field documents its default.
type SweeperConfig struct {
	// Interval is the pause between sweeps in Run. Default:
	// DefaultSweepInterval (one minute). Must not be negative.
	Interval time.Duration
	// BatchSize caps the requests expired by one statement, so a backlog
	// is worked off in short transactions. Default: DefaultSweepBatch
	// (1000). Must not be negative.
	BatchSize int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives sweep failures and counts. Default: slog.Default().
	Logger *slog.Logger
}

// Sweeper expires pending requests whose time to live has passed, across
// every tenant, writing an "expire" audit row for each. Expired requests
// can no longer be decided, so their actions never run.
//
// It needs a connection that sees every tenant: the system role (BYPASSRLS).
// Through the application role, row-level security hides every row and
// the sweeper expires nothing.
type Sweeper struct {
	db  Execer
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper working through db, which should connect as
// the system role. It validates cfg.
func NewSweeper(db Execer, cfg SweeperConfig) (*Sweeper, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database", ErrInvalidConfig)
	}
	if cfg.Interval < 0 || cfg.BatchSize < 0 {
		return nil, fmt.Errorf("%w: negative sweep interval or batch size", ErrInvalidConfig)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultSweepInterval
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultSweepBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sweeper{db: db, cfg: cfg}, nil
}

// sweepSQL expires one batch. SKIP LOCKED leaves alone a request being
// decided right now: its decider either records a decision or, on seeing
// it expired, refuses; the next sweep takes it if it stays pending.
const sweepSQL = `
WITH due AS (
    SELECT tenant_id, id FROM platform.approvals_requests
    WHERE status = 'pending' AND expires_at <= $1
    ORDER BY expires_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED),
expired AS (
    UPDATE platform.approvals_requests r SET status = 'expired'
    FROM due WHERE r.tenant_id = due.tenant_id AND r.id = due.id
    RETURNING r.tenant_id, r.id)
INSERT INTO platform.approvals_audit (tenant_id, request_id, actor, action, result, status_after, recorded_at)
SELECT tenant_id, id, $3, 'expire', 'expired', 'expired', $1 FROM expired`

// Sweep expires every pending request whose expiry time has passed, in
// batches of BatchSize, and returns how many it expired.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	total, err := sweep.Drain(ctx, int64(s.cfg.BatchSize), func(ctx context.Context) (int64, error) {
		tag, err := s.db.Exec(ctx, sweepSQL, now, s.cfg.BatchSize, SystemActor)
		instruments.expired.Add(ctx, tag.RowsAffected())
		return tag.RowsAffected(), err
	})
	if err != nil {
		return int(total), fmt.Errorf("approvals: sweep: %w", err)
	}
	return int(total), nil
}

// Run sweeps every Interval until ctx is done, logging failures and going
// on; it returns when ctx is done.
func (s *Sweeper) Run(ctx context.Context) {
	sweep.Every(ctx, s.cfg.Interval, func(ctx context.Context) {
		n, err := s.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.ErrorContext(ctx, "approvals: sweep failed", slog.Any("error", err))
		case n > 0:
			s.cfg.Logger.InfoContext(ctx, "approvals: expired requests", slog.Int("count", n))
		}
	})
}
