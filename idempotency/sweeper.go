package idempotency

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
	// DefaultSweepBatchSize is SweeperConfig.BatchSize's default.
	DefaultSweepBatchSize = 1000
	// DefaultSweepInterval is SweeperConfig.Interval's default.
	DefaultSweepInterval = time.Minute
	// DefaultSweepBatchPause is SweeperConfig.BatchPause's default.
	DefaultSweepBatchPause = 100 * time.Millisecond
	// NoBatchPause, as SweeperConfig.BatchPause, runs each batch of a
	// sweep right after the one before.
	NoBatchPause time.Duration = -1
)

// Execer runs statements and reads their rows: all a Sweeper needs. It is
// the library's shared executor interface (Exec, Query, QueryRow);
// *pgxpool.Pool, *pgx.Conn, pgx.Tx and every package's DB satisfy it.
type Execer = dbx.Execer

// SweeperConfig configures a Sweeper. The zero value is usable: every field
// documents its default.
type SweeperConfig struct {
	// BatchSize is how many entries one DELETE removes; each batch is its
	// own short transaction, so a large backlog never holds locks for long.
	// Default: DefaultSweepBatchSize (1000). Must not be negative.
	BatchSize int
	// Interval is Run's pause between sweeps. Default: DefaultSweepInterval
	// (1 minute). Must not be negative.
	Interval time.Duration
	// BatchPause is a pause between two batches of one sweep. A backlog
	// of a million expired entries is a thousand batches, which back to
	// back take the database from the requests while they last. The
	// pause trades the sweep's time for the requests' throughput: a sweep
	// of N batches takes about N×BatchPause more. Default
	// DefaultSweepBatchPause (100ms): it keeps claims per second within a
	// tenth of what they are without a sweep, where sweeping without a
	// pause cost up to a quarter of them, and a backlog of a million
	// entries takes under two minutes to sweep instead of a few seconds.
	// An expired entry frees its key whether or not it was swept yet, so
	// a slower sweep only keeps the rows a little longer. NoBatchPause
	// sweeps without pausing; other negative values are refused.
	BatchPause time.Duration
	// Logger receives sweep failures in Run. Default: slog.Default().
	Logger *slog.Logger
}

// Sweeper deletes expired entries of every tenant. Give it a pool of the
// system role (BYPASSRLS): under the application role row-level security
// hides every row and it would delete nothing.
type Sweeper struct {
	db  Execer
	cfg SweeperConfig
}

// NewSweeper returns a Sweeper on db.
func NewSweeper(db Execer, cfg SweeperConfig) (*Sweeper, error) {
	if db == nil {
		return nil, errs.Config("idempotency", "nil database")
	}
	if cfg.BatchSize < 0 || cfg.Interval < 0 || (cfg.BatchPause < 0 && cfg.BatchPause != NoBatchPause) {
		return nil, errs.Config("idempotency", "BatchSize, Interval and BatchPause (but for NoBatchPause) must not be negative")
	}
	cfg.BatchSize = cmp.Or(cfg.BatchSize, DefaultSweepBatchSize)
	cfg.Interval = cmp.Or(cfg.Interval, DefaultSweepInterval)
	cfg.BatchPause = cmp.Or(cfg.BatchPause, DefaultSweepBatchPause)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Sweeper{db: db, cfg: cfg}, nil
}

// sweepSQL deletes up to $1 entries whose expiry has passed by the
// database's clock, oldest first, from expiry $2 on (NULL: from the
// oldest), and returns how many it deleted and the latest expiry among
// them. SKIP LOCKED: an entry being claimed again right now is left to the
// next sweep rather than waited for. An in-progress entry whose lease is
// live is never taken: Renew keeps such an entry's expiry at or after its
// lease's end, and this guard holds the promise even for a row written
// otherwise.
//
// The cursor ($2) is what keeps a large backlog linear: the entries a
// batch deletes stay in the expiry index as dead entries until VACUUM, so
// a batch that started from the oldest expiry again would step over all
// that the sweep had deleted so far, and each batch of a backlog of a
// million would be slower than the one before.
const sweepSQL = `
WITH due AS (
    SELECT tenant_id, key FROM platform.idempotency_keys
    WHERE expires_at <= now() AND expires_at >= coalesce($2::timestamptz, '-infinity')
      AND NOT (state = 'in_progress' AND lease_until > now())
    ORDER BY expires_at LIMIT $1
    FOR UPDATE SKIP LOCKED),
gone AS (
    DELETE FROM platform.idempotency_keys k USING due
    WHERE k.tenant_id = due.tenant_id AND k.key = due.key
    RETURNING k.expires_at)
SELECT count(*), max(expires_at) FROM gone`

// SweepOnce deletes every entry whose expiry has passed, in batches of
// BatchSize (each its own transaction, each starting where the one before
// ended), and returns how many it deleted. Batches after the first wait
// BatchPause; a context that ends during the pause stops the sweep at once
// with the context's error and the count so far.
func (s *Sweeper) SweepOnce(ctx context.Context) (int64, error) {
	var after *time.Time // the latest expiry deleted so far
	total, err := sweep.DrainPaced(ctx, int64(s.cfg.BatchSize), s.cfg.BatchPause, func(ctx context.Context) (int64, error) {
		var (
			n      int64
			latest *time.Time
		)
		if err := s.db.QueryRow(ctx, sweepSQL, s.cfg.BatchSize, after).Scan(&n, &latest); err != nil {
			return 0, err
		}
		if latest != nil {
			after = latest
		}
		return n, nil
	})
	if err != nil {
		return total, fmt.Errorf("idempotency: sweep: %w", err)
	}
	return total, nil
}

// Run sweeps (SweepOnce) at once and then every Interval until ctx is
// done, logging failures, and returns ctx's error.
func (s *Sweeper) Run(ctx context.Context) error {
	return sweep.Run(ctx, s.cfg.Interval, s.cfg.Logger, "idempotency: swept expired keys", s.SweepOnce)
}
