package durable

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/internal/sweep"
)

// ListOptions filters and pages List.
type ListOptions struct {
	// Statuses keeps runs in one of these statuses. Default: the
	// incomplete ones (pending, running, sleeping, waiting).
	Statuses []Status
	// Workflow keeps runs of this workflow only. Default: all.
	Workflow string
	// Limit is the page size. Default 50; at most 1000.
	Limit int
	// After is the Next cursor of the previous page; empty for the first.
	After string
}

// Page is one page of List, oldest run first.
type Page struct {
	Runs []Run
	// Next is the cursor of the next page; empty on the last page.
	Next string
}

// DefaultIncomplete is List's default status filter.
var DefaultIncomplete = []Status{StatusPending, StatusRunning, StatusSleeping, StatusWaiting}

const listSQL = `SELECT ` + runColumns + ` FROM platform.durable_runs
WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
  AND status = ANY($1) AND ($2 = '' OR workflow = $2)
  AND (created_at, id) > ($3, $4)
ORDER BY created_at, id
LIMIT $5`

// List returns tenant's runs matching opts, oldest first, a page at a
// time. It returns ErrInvalidCursor for an After it did not make.
func (rt *Runtime) List(ctx context.Context, tenant string, opts ListOptions) (Page, error) {
	statuses, err := statusFilter(opts.Statuses)
	if err != nil {
		return Page{}, err
	}
	limit := opts.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	afterTime, afterID := time.Unix(0, 0).UTC(), ""
	if opts.After != "" {
		if afterTime, afterID, err = DecodeCursor(opts.After); err != nil {
			return Page{}, err
		}
	}
	var page Page
	err = rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, listSQL, statuses, opts.Workflow, afterTime, afterID, limit+1)
		if err != nil {
			return err
		}
		page.Runs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
		return err
	})
	if err != nil {
		return Page{}, fmt.Errorf("durable: list runs: %w", err)
	}
	if len(page.Runs) > limit {
		page.Runs = page.Runs[:limit]
		last := page.Runs[limit-1]
		page.Next = EncodeCursor(last.CreatedAt, last.ID)
	}
	return page, nil
}

func statusFilter(statuses []Status) ([]string, error) {
	if len(statuses) == 0 {
		statuses = DefaultIncomplete
	}
	out := make([]string, len(statuses))
	for i, s := range statuses {
		if !s.valid() {
			return nil, fmt.Errorf("durable: unknown status %q", s)
		}
		out[i] = string(s)
	}
	return out, nil
}

// EncodeCursor makes the paging cursor that follows the run created at t
// with id.
func EncodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixMicro(), 10) + "|" + id))
}

// DecodeCursor parses a cursor EncodeCursor made.
func DecodeCursor(cursor string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: not base64url", ErrInvalidCursor)
	}
	micros, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, "", fmt.Errorf("%w: no separator", ErrInvalidCursor)
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, "", fmt.Errorf("%w: bad time", ErrInvalidCursor)
	}
	if err := ValidateRunID(id); err != nil {
		return time.Time{}, "", fmt.Errorf("%w: %v", ErrInvalidCursor, err)
	}
	return time.UnixMicro(n).UTC(), id, nil
}

const cancelSQL = `
UPDATE platform.durable_runs
SET status = 'cancelled', error = $2, finished_at = $3, updated_at = $3, owner = NULL, lease_until = NULL,
    ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND id = $1
  AND status NOT IN ('completed', 'failed', 'cancelled')`

// Cancel cancels tenant's run runID with reason; see CancelTx.
func (rt *Runtime) Cancel(ctx context.Context, tenant, runID, reason string) error {
	return rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		return rt.CancelTx(ctx, tx, runID, reason)
	})
}

// CancelTx marks run runID cancelled in the caller's tenant-scoped
// transaction. A worker executing it notices at its next checkpoint or
// heartbeat and stops without writing; steps already recorded stay. It
// returns ErrRunFinished for a final run and ErrRunNotFound for an unknown
// one.
func (rt *Runtime) CancelTx(ctx context.Context, tx pgx.Tx, runID, reason string) error {
	if reason == "" {
		reason = "cancelled"
	}
	tag, err := tx.Exec(ctx, cancelSQL, runID, reason, rt.cfg.Clock())
	if err != nil {
		return fmt.Errorf("durable: cancel run: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := getRun(ctx, tx, runID); err != nil {
		if errors.Is(err, ErrRunNotFound) {
			return rt.missingRun(ctx, tx, runID)
		}
		return err
	}
	return fmt.Errorf("%w: %q", ErrRunFinished, runID)
}

const resumeSQL = `
UPDATE platform.durable_runs
SET status = 'pending', error = NULL, output = NULL, finished_at = NULL, updated_at = $2, ready_at = $2
WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND id = $1
  AND status IN ('failed', 'cancelled')`

// A resumed run must be able to try its last failing steps again: the
// failed checkpoints after the last successful one are dropped.
const dropTrailingFailuresSQL = `
DELETE FROM platform.durable_steps s
WHERE s.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND s.run_id = $1
  AND s.status = 'failed'
  AND s.seq > coalesce((SELECT max(seq) FROM platform.durable_steps o
                        WHERE o.tenant_id = s.tenant_id AND o.run_id = s.run_id AND o.status <> 'failed'), 0)`

// Resume puts tenant's failed or cancelled run runID back to pending, so
// that a worker resumes it from its last checkpoint (after the code or the
// world was fixed). Recorded successful steps are not run again; the failed
// steps at the end of its history are. It returns ErrRunNotFailed for a run
// in another status.
func (rt *Runtime) Resume(ctx context.Context, tenant, runID string) error {
	err := rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, resumeSQL, runID, rt.cfg.Clock())
		if err != nil {
			return fmt.Errorf("durable: resume run: %w", err)
		}
		if tag.RowsAffected() == 0 {
			run, err := getRun(ctx, tx, runID)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %q is %s", ErrRunNotFailed, runID, run.Status)
		}
		if _, err := tx.Exec(ctx, dropTrailingFailuresSQL, runID); err != nil {
			return fmt.Errorf("durable: resume run: %w", err)
		}
		return nil
	})
	if err == nil {
		rt.wake()
	}
	return err
}

const deleteFinishedSQL = `
DELETE FROM platform.durable_runs
WHERE (tenant_id, id) IN (
    SELECT tenant_id, id FROM platform.durable_runs
    WHERE finished_at < $1
    LIMIT $2)`

// deleteFinishedBatch is how many runs one statement of DeleteFinished
// deletes.
const deleteFinishedBatch = 1000

// DeleteFinished deletes the runs of every tenant (with their checkpoints
// and signals) that finished more than retention ago, in batches, and
// returns how many it deleted. It runs on the System pool; call it
// periodically.
func (rt *Runtime) DeleteFinished(ctx context.Context, retention time.Duration) (int64, error) {
	if rt.cfg.System == nil {
		return 0, ErrNoSystemPool
	}
	if retention < 0 {
		return 0, fmt.Errorf("%w: negative retention", ErrInvalidConfig)
	}
	cutoff := rt.cfg.Clock().Add(-retention)
	total, err := sweep.Drain(ctx, deleteFinishedBatch, func(ctx context.Context) (int64, error) {
		tag, err := rt.cfg.System.Exec(ctx, deleteFinishedSQL, cutoff, deleteFinishedBatch)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("durable: delete finished runs: %w", err)
	}
	return total, nil
}
