package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// The administration methods (Redrive, RedriveWhere, DiscardJob, Purge,
// GetJob, Stats) are operator tools. Called with a context that carries
// no tenant they act on every job the client's role can see — every
// tenant's through the system role. Called with a context that carries a
// tenant (on the request path of a tenant's own admin page) they act on
// that tenant's jobs only, in a statement scoped to it, so the app role
// can use them under row-level security. Their …Tx variants act in the
// caller's transaction on the jobs of the tenant it is scoped to.

// scope is the query function and tenant ("" for all) of an
// administration call.
type scope struct {
	query  queryFunc
	tenant string
}

func (c *Client) scope(ctx context.Context) scope {
	tenant, ok := rls.TenantFrom(ctx)
	if !ok {
		return scope{query: c.db.Query}
	}
	return scope{tenant: tenant, query: func(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
		return rls.Query(ctx, c.db, tenant, sql, args...)
	}}
}

func txScope(ctx context.Context, tx pgx.Tx) (scope, error) {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return scope{}, fmt.Errorf("dlq: %w", err)
	}
	return scope{tenant: tenant, query: tx.Query}, nil
}

// queryRow runs sql and scans its one row into dest, or returns
// pgx.ErrNoRows.
func (s scope) queryRow(ctx context.Context, sql string, args []any, dest ...any) error {
	rows, err := s.query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// tenantForms is one administration statement in its two forms: [0] for
// every tenant (the system role's operator call), [1] restricted to the
// tenant in its parameter by tenant_id = $n, a predicate a database
// distributed by tenant_id routes to the tenant's shard (one statement
// that tests for an empty parameter OR tenant_id is not routed). Both forms
// take the same parameters, so the arguments do not depend on the form.
type tenantForms [2]string

// tenantMark is where a statement template names the call's tenant.
var tenantMark = regexp.MustCompile(`\{tenant \$(\d+)\}`)

// forms expands every {tenant $n} of sql: a test that parameter $n is
// empty (true: the call has no tenant) in the all-tenant form,
// "tenant_id = $n::uuid" in the routed one.
func forms(sql string) tenantForms {
	return tenantForms{
		tenantMark.ReplaceAllString(sql, "$$${1}::text = ''"),
		tenantMark.ReplaceAllString(sql, "tenant_id = $$${1}::uuid"),
	}
}

// sql is the form of f for the call's scope.
func (s scope) sql(f tenantForms) string {
	if s.tenant == "" {
		return f[0]
	}
	return f[1]
}

// Filter selects dead jobs for RedriveWhere and Purge. Empty fields match
// everything; a zero Filter matches every dead job.
type Filter struct {
	// Queue, when set, matches jobs of that queue.
	Queue string `json:"queue,omitempty"`
	// Kind, when set, matches jobs of that kind.
	Kind string `json:"kind,omitempty"`
	// Tenant, when set, matches jobs of that tenant (a UUID). It selects
	// among the jobs the call may act on; it does not widen a call scoped
	// to another tenant, which then matches nothing.
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
			return fmt.Errorf("%w: %w", ErrInvalidFilter, err)
		}
	}
	return nil
}

// filterSQL matches dead jobs by a Filter in parameters $2–$7 and the
// call's scope in $8.
const filterSQL = `state = 'dead'
  AND ($2 = '' OR queue = $2)
  AND ($3 = '' OR kind = $3)
  AND ($4 = '' OR tenant_id = NULLIF($4, '')::uuid)
  AND ($5::timestamptz IS NULL OR finalized_at >= $5)
  AND ($6::timestamptz IS NULL OR finalized_at < $6)
  AND ($7 = '' OR strpos(errors -> -1 ->> 'error', $7) > 0)
  AND {tenant $8}`

func (f Filter) args(s scope) []any {
	return []any{f.Queue, f.Kind, f.Tenant, nullTime(f.DeadAfter), nullTime(f.DeadBefore), f.ErrorContains, s.tenant}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var redriveSQL = forms(`
WITH j AS (
    UPDATE platform.dlq_jobs SET state = 'available', attempt = 0, run_at = now(), finalized_at = NULL
    WHERE id = $1 AND state = 'dead' AND {tenant $2} RETURNING queue
)
SELECT count(*) FROM j CROSS JOIN LATERAL (SELECT pg_notify('` + notifyChannel + `', j.queue)) n`)

// Redrive puts one dead job back to available, due now, its attempts
// reset and its error history kept. Its claim count is not reset, so a
// worker that lost the job's lease long ago still cannot record an
// outcome for it. It returns ErrJobNotFound or ErrNotDead.
func (c *Client) Redrive(ctx context.Context, id int64) error {
	return c.onDeadJob(ctx, c.scope(ctx), id, redriveSQL)
}

// RedriveTx is Redrive within tx, for a job of the tenant tx is scoped to.
// tx must already be scoped to a tenant; it is never re-scoped, and a
// context naming another tenant is refused with a *tenancy.TenantMismatchError.
func (c *Client) RedriveTx(ctx context.Context, tx pgx.Tx, id int64) error {
	s, err := txScope(ctx, tx)
	if err != nil {
		return err
	}
	return c.onDeadJob(ctx, s, id, redriveSQL)
}

var discardSQL = forms(`
WITH j AS (
    UPDATE platform.dlq_jobs SET state = 'discarded', finalized_at = now()
    WHERE id = $1 AND state = 'dead' AND {tenant $2} RETURNING 1
)
SELECT count(*) FROM j`)

// DiscardJob moves one dead job to the discarded state: it leaves the
// dead-letter queue and is swept after the retention. It returns
// ErrJobNotFound or ErrNotDead.
func (c *Client) DiscardJob(ctx context.Context, id int64) error {
	return c.onDeadJob(ctx, c.scope(ctx), id, discardSQL)
}

// DiscardJobTx is DiscardJob within tx, for a job of the tenant tx is
// scoped to. tx must already be scoped to a tenant; it is never re-scoped,
// and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (c *Client) DiscardJobTx(ctx context.Context, tx pgx.Tx, id int64) error {
	s, err := txScope(ctx, tx)
	if err != nil {
		return err
	}
	return c.onDeadJob(ctx, s, id, discardSQL)
}

var stateSQL = forms(`SELECT state FROM platform.dlq_jobs WHERE id = $1 AND {tenant $2}`)

// onDeadJob runs an update of one dead job whose query returns the number
// of rows changed, and explains a zero.
func (c *Client) onDeadJob(ctx context.Context, s scope, id int64, sql tenantForms) error {
	var n int
	if err := s.queryRow(ctx, s.sql(sql), []any{id, s.tenant}, &n); err != nil {
		return fmt.Errorf("dlq: job %d: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	var state string
	err := s.queryRow(ctx, s.sql(stateSQL), []any{id, s.tenant}, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %d", ErrJobNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("dlq: job %d: %w", id, err)
	}
	return fmt.Errorf("%w: job %d is %s", ErrNotDead, id, state)
}

var redriveWhereSQL = forms(`
WITH redriven AS (
    UPDATE platform.dlq_jobs SET state = 'available', attempt = 0, run_at = now(), finalized_at = NULL
    WHERE $1::int IS NULL AND ` + filterSQL + ` RETURNING queue
), notified AS (
    SELECT pg_notify('` + notifyChannel + `', queue) FROM (SELECT DISTINCT queue FROM redriven) q
)
SELECT (SELECT count(*) FROM redriven), (SELECT count(*) FROM notified)`)

// RedriveWhere puts every dead job f matches back to available, attempts
// reset, and returns how many.
func (c *Client) RedriveWhere(ctx context.Context, f Filter) (int64, error) {
	return c.redriveWhere(ctx, c.scope(ctx), f)
}

// RedriveWhereTx is RedriveWhere within tx, among the jobs of the tenant
// tx is scoped to. tx must already be scoped to a tenant; it is never
// re-scoped, and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (c *Client) RedriveWhereTx(ctx context.Context, tx pgx.Tx, f Filter) (int64, error) {
	s, err := txScope(ctx, tx)
	if err != nil {
		return 0, err
	}
	return c.redriveWhere(ctx, s, f)
}

func (c *Client) redriveWhere(ctx context.Context, s scope, f Filter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	var n, notified int64
	if err := s.queryRow(ctx, s.sql(redriveWhereSQL), append([]any{nil}, f.args(s)...), &n, &notified); err != nil {
		return 0, fmt.Errorf("dlq: redrive: %w", err)
	}
	return n, nil
}

var purgeSQL = forms(`
WITH purged AS (DELETE FROM platform.dlq_jobs WHERE $1::int IS NULL AND ` + filterSQL + ` RETURNING 1)
SELECT count(*) FROM purged`)

// Purge deletes every dead job f matches and returns how many.
func (c *Client) Purge(ctx context.Context, f Filter) (int64, error) {
	return c.purge(ctx, c.scope(ctx), f)
}

// PurgeTx is Purge within tx, among the jobs of the tenant tx is scoped
// to. tx must already be scoped to a tenant; it is never re-scoped, and a
// context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (c *Client) PurgeTx(ctx context.Context, tx pgx.Tx, f Filter) (int64, error) {
	s, err := txScope(ctx, tx)
	if err != nil {
		return 0, err
	}
	return c.purge(ctx, s, f)
}

func (c *Client) purge(ctx context.Context, s scope, f Filter) (int64, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	var n int64
	if err := s.queryRow(ctx, s.sql(purgeSQL), append([]any{nil}, f.args(s)...), &n); err != nil {
		return 0, fmt.Errorf("dlq: purge: %w", err)
	}
	return n, nil
}

var getJobSQL = forms(`
SELECT id, tenant_id::text, queue, kind, payload, priority, attempt, max_attempts, created_at, errors,
       state, run_at, coalesce(dedup_key, ''), finalized_at
FROM platform.dlq_jobs WHERE id = $1 AND {tenant $2}`)

// GetJob returns one job in any state with its history, or ErrJobNotFound.
func (c *Client) GetJob(ctx context.Context, id int64) (*JobInfo, error) {
	info := &JobInfo{}
	var state string
	var payload, history []byte
	s := c.scope(ctx)
	err := s.queryRow(ctx, s.sql(getJobSQL), []any{id, s.tenant},
		&info.ID, &info.Tenant, &info.Queue, &info.Kind, &payload,
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
