package durable

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
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
WHERE tenant_id = $1 AND status = ANY($2) AND ($3 = '' OR workflow = $3)
  AND (created_at, id) > ($4, $5)
ORDER BY created_at, id
LIMIT $6`

// List returns the runs of the tenant ctx carries matching opts, oldest
// first, a page at a time. It returns ErrInvalidCursor for an After it did
// not make.
func (rt *Runtime) List(ctx context.Context, opts ListOptions) (Page, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return Page{}, err
	}
	return rt.ListForTenant(ctx, tenant, opts)
}

// ListForTenant is List for tenant's runs, for system work across
// tenants.
func (rt *Runtime) ListForTenant(ctx context.Context, tenant string, opts ListOptions) (Page, error) {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return Page{}, err
	}
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
	rows, err := rls.Query(ctx, rt.cfg.App, tenant, listSQL, tenant, statuses, opts.Workflow, afterTime, afterID, limit+1)
	if err == nil {
		page.Runs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Run, error) { return scanRun(row) })
	}
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
SET status = 'cancelled', error = $3, finished_at = now(), updated_at = now(), owner = NULL, lease_until = NULL,
    ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
WHERE tenant_id = $1 AND id = $2 AND status NOT IN ('completed', 'failed', 'cancelled')`

// Cancel cancels the run runID of the tenant ctx carries with reason; see
// CancelTx.
func (rt *Runtime) Cancel(ctx context.Context, runID, reason string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	return rt.CancelForTenant(ctx, tenant, runID, reason)
}

// CancelForTenant is Cancel for tenant's run, for system work across
// tenants.
func (rt *Runtime) CancelForTenant(ctx context.Context, tenant, runID, reason string) error {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return err
	}
	return rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		return cancelIn(ctx, tx, tenant, runID, reason)
	})
}

// CancelTx marks run runID cancelled in the caller's transaction, with
// reason (default "cancelled"; NUL and invalid UTF-8 are replaced). A
// worker executing it notices at its next checkpoint or heartbeat and
// stops without writing; steps already recorded stay. It returns
// ErrRunFinished for a final run and ErrRunNotFound for an unknown one.
// tx must already be scoped to a tenant; it is never re-scoped, and a
// context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (rt *Runtime) CancelTx(ctx context.Context, tx pgx.Tx, runID, reason string) error {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return err
	}
	return cancelIn(ctx, tx, tenant, runID, reason)
}

func cancelIn(ctx context.Context, tx pgx.Tx, tenant, runID, reason string) error {
	tag, err := tx.Exec(ctx, cancelSQL, tenant, runID, cleanError(cmp.Or(reason, "cancelled")))
	if err != nil {
		return fmt.Errorf("durable: cancel run: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	if _, err := getIn(ctx, tx, tenant, runID); err != nil {
		return err
	}
	return fmt.Errorf("%w: %q", ErrRunFinished, runID)
}

const resumeSQL = `
UPDATE platform.durable_runs
SET status = 'pending', error = NULL, output = NULL, finished_at = NULL, updated_at = now(), ready_at = now()
WHERE tenant_id = $1 AND id = $2 AND status IN ('failed', 'cancelled')`

// A resumed run must be able to try its last failing steps again: the
// failed checkpoints after the last successful one are dropped.
const dropTrailingFailuresSQL = `
DELETE FROM platform.durable_steps s
WHERE s.tenant_id = $1 AND s.run_id = $2
  AND s.status = 'failed'
  AND s.seq > coalesce((SELECT max(seq) FROM platform.durable_steps o
                        WHERE o.tenant_id = s.tenant_id AND o.run_id = s.run_id AND o.status <> 'failed'), 0)`

// Resume puts the failed or cancelled run runID of the tenant ctx carries
// back to pending, so that a worker resumes it from its last checkpoint
// (after the code or the world was fixed). Recorded successful steps are
// not run again; the failed steps at the end of its history are. It
// returns ErrRunNotFailed for a run in another status.
func (rt *Runtime) Resume(ctx context.Context, runID string) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	return rt.ResumeForTenant(ctx, tenant, runID)
}

// ResumeForTenant is Resume for tenant's run, for system work across
// tenants.
func (rt *Runtime) ResumeForTenant(ctx context.Context, tenant, runID string) error {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return err
	}
	err = rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, resumeSQL, tenant, runID)
		if err != nil {
			return fmt.Errorf("durable: resume run: %w", err)
		}
		if tag.RowsAffected() == 0 {
			run, err := getIn(ctx, tx, tenant, runID)
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %q is %s", ErrRunNotFailed, runID, run.Status)
		}
		if _, err := tx.Exec(ctx, dropTrailingFailuresSQL, tenant, runID); err != nil {
			return fmt.Errorf("durable: resume run: %w", err)
		}
		return nil
	})
	if err == nil {
		rt.wake()
	}
	return err
}
