package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// Filter selects dead jobs for RedriveWhere and Purge. Empty fields match
// everything; a zero Filter matches every dead job.
type Filter struct {
	// Queue, when set, matches jobs of that queue.
	Queue string `json:"queue,omitempty"`
	// Kind, when set, matches jobs of that kind.
	Kind string `json:"kind,omitempty"`
	// Tenant, when set, matches jobs of that tenant (a UUID).
	Tenant string `json:"tenant,omitempty"`
	// DeadAfter and DeadBefore, when set, bound when the job went dead.
	DeadAfter  time.Time `json:"dead_after,omitzero"`
	DeadBefore time.Time `json:"dead_before,omitzero"`
	// ErrorContains, when set, matches jobs whose last error contains it.
	ErrorContains string `json:"error_contains,omitempty"`
}

func (f Filter) validate() error {
	if f.Tenant != "" {
		if _, err := rls.ParseTenant(f.Tenant); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidFilter, err)
		}
	}
	return nil
}

// filterSQL matches dead jobs by a Filter in parameters $2–$7.
const filterSQL = `state = 'dead'
  AND ($2 = '' OR queue = $2)
  AND ($3 = '' OR kind = $3)
  AND ($4 = '' OR tenant_id = NULLIF($4, '')::uuid)
  AND ($5::timestamptz IS NULL OR finalized_at >= $5)
  AND ($6::timestamptz IS NULL OR finalized_at < $6)
  AND ($7 = '' OR strpos(errors -> -1 ->> 'error', $7) > 0)`

func (f Filter) args() []any {
	return []any{f.Queue, f.Kind, f.Tenant, nullTime(f.DeadAfter), nullTime(f.DeadBefore), f.ErrorContains}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Redrive puts one dead job back to available, attempts reset and error
// history kept. It returns ErrJobNotFound or ErrNotDead.
func (c *Client) Redrive(ctx context.Context, id int64) error {
	return c.RedriveTx(ctx, c.pool, id)
}

// RedriveTx is Redrive within tx.
func (c *Client) RedriveTx(ctx context.Context, tx DBTX, id int64) error {
	return c.onDeadJob(ctx, tx, id, `
WITH j AS (
    UPDATE platform.dlq_jobs SET state = 'available', attempt = 0, run_at = $2, finalized_at = NULL
    WHERE id = $1 AND state = 'dead' RETURNING queue
)
SELECT count(*) FROM j CROSS JOIN LATERAL (SELECT pg_notify('`+notifyChannel+`', j.queue)) n`)
}

// DiscardJob moves one dead job to the discarded state: it leaves the
// dead-letter queue and is deleted after Config.Retention. It returns
// ErrJobNotFound or ErrNotDead.
func (c *Client) DiscardJob(ctx context.Context, id int64) error {
	return c.DiscardJobTx(ctx, c.pool, id)
}

// DiscardJobTx is DiscardJob within tx.
func (c *Client) DiscardJobTx(ctx context.Context, tx DBTX, id int64) error {
	return c.onDeadJob(ctx, tx, id, `
WITH j AS (
    UPDATE platform.dlq_jobs SET state = 'discarded', finalized_at = $2
    WHERE id = $1 AND state = 'dead' RETURNING 1
)
SELECT count(*) FROM j`)
}

// onDeadJob runs an update of one dead job whose query returns the number
// of rows changed, and explains a zero.
func (c *Client) onDeadJob(ctx context.Context, tx DBTX, id int64, sql string) error {
	var n int
	if err := tx.QueryRow(ctx, sql, id, c.cfg.Now()).Scan(&n); err != nil {
		return fmt.Errorf("dlq: job %d: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	var state string
	err := tx.QueryRow(ctx, "SELECT state FROM platform.dlq_jobs WHERE id = $1", id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %d", ErrJobNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("dlq: job %d: %w", id, err)
	}
	return fmt.Errorf("%w: job %d is %s", ErrNotDead, id, state)
}

// RedriveWhere puts every dead job f matches back to available, attempts
// reset, and returns how many.
func (c *Client) RedriveWhere(ctx context.Context, f Filter) (int64, error) {
	return c.RedriveWhereTx(ctx, c.pool, f)
}

// RedriveWhereTx is RedriveWhere within tx.
func (c *Client) RedriveWhereTx(ctx context.Context, tx DBTX, f Filter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	sql := `
WITH redriven AS (
    UPDATE platform.dlq_jobs SET state = 'available', attempt = 0, run_at = $1, finalized_at = NULL
    WHERE ` + filterSQL + ` RETURNING queue
), notified AS (
    SELECT pg_notify('` + notifyChannel + `', queue) FROM (SELECT DISTINCT queue FROM redriven) q
)
SELECT (SELECT count(*) FROM redriven), (SELECT count(*) FROM notified)`
	var n, notified int64
	args := append([]any{c.cfg.Now()}, f.args()...)
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n, &notified); err != nil {
		return 0, fmt.Errorf("dlq: redrive: %w", err)
	}
	return n, nil
}

// Purge deletes every dead job f matches and returns how many.
func (c *Client) Purge(ctx context.Context, f Filter) (int64, error) {
	return c.PurgeTx(ctx, c.pool, f)
}

// PurgeTx is Purge within tx.
func (c *Client) PurgeTx(ctx context.Context, tx DBTX, f Filter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	args := append([]any{nil}, f.args()...)
	tag, err := tx.Exec(ctx, "DELETE FROM platform.dlq_jobs WHERE $1::int IS NULL AND "+filterSQL, args...)
	if err != nil {
		return 0, fmt.Errorf("dlq: purge: %w", err)
	}
	return tag.RowsAffected(), nil
}

// GetJob returns one job in any state with its history, or ErrJobNotFound.
func (c *Client) GetJob(ctx context.Context, id int64) (*JobInfo, error) {
	info := &JobInfo{}
	var state string
	var payload, history []byte
	err := c.pool.QueryRow(ctx, `
SELECT id, tenant_id::text, queue, kind, payload, priority, attempt, max_attempts, created_at, errors,
       state, run_at, coalesce(dedup_key, ''), finalized_at
FROM platform.dlq_jobs WHERE id = $1`, id).Scan(&info.ID, &info.Tenant, &info.Queue, &info.Kind, &payload,
		&info.Priority, &info.Attempt, &info.MaxAttempts, &info.CreatedAt, &history,
		&state, &info.RunAt, &info.DedupKey, &info.FinalizedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", ErrJobNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: get job %d: %w", id, err)
	}
	info.State = State(state)
	info.Payload = payload
	if err := json.Unmarshal(history, &info.Errors); err != nil {
		return nil, fmt.Errorf("dlq: job %d: error history: %w", id, err)
	}
	return info, nil
}

// JobInfo is a job as stored, for inspection.
type JobInfo struct {
	Job
	State       State
	RunAt       time.Time
	DedupKey    string
	FinalizedAt *time.Time
}
