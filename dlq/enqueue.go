package dlq

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// Enqueue stores one job of the tenant ctx carries (tenancy.WithTenant or
// the authentication middleware put it there), in one statement scoped to
// that tenant. A context without a tenant is refused with ErrNoTenant. Use
// EnqueueTx to make the job atomic with the caller's writes, and
// EnqueueForTenant for system work that names the tenant itself.
func (c *Client) Enqueue(ctx context.Context, p JobParams) (Inserted, error) {
	return one(c.EnqueueMany(ctx, []JobParams{p}))
}

// EnqueueForTenant is Enqueue for system work across tenants (a
// scheduler, a migration, another job's follow-up): it stores the job for
// tenant, whatever ctx carries. A tenant that is not a UUID is refused with
// ErrInvalidTenant.
func (c *Client) EnqueueForTenant(ctx context.Context, tenant string, p JobParams) (Inserted, error) {
	return one(c.EnqueueManyForTenant(ctx, tenant, []JobParams{p}))
}

// EnqueueTx stores one job in tx for the tenant tx is scoped to: the job
// exists, and wakes the workers, only if tx commits (the outbox pattern).
// tx must already be scoped to a tenant; it is never re-scoped, and a
// context naming another tenant is refused with a *tenancy.TenantMismatchError.
// An unscoped tx is refused with ErrNoTenant.
func (c *Client) EnqueueTx(ctx context.Context, tx pgx.Tx, p JobParams) (Inserted, error) {
	return one(c.EnqueueManyTx(ctx, tx, []JobParams{p}))
}

// EnqueueMany stores jobs of the tenant ctx carries in one statement scoped
// to it, and returns their outcomes in order. Nothing is stored when one of
// them is invalid.
func (c *Client) EnqueueMany(ctx context.Context, params []JobParams) ([]Inserted, error) {
	tenant, ok := rls.TenantFrom(ctx)
	if !ok {
		return nil, fmt.Errorf("dlq: enqueue: %w", ErrNoTenant)
	}
	return c.enqueueScoped(ctx, tenant, params)
}

// EnqueueManyForTenant is EnqueueMany for system work: it stores the jobs
// for tenant, whatever ctx carries.
func (c *Client) EnqueueManyForTenant(ctx context.Context, tenant string, params []JobParams) ([]Inserted, error) {
	canonical, err := rls.ParseTenant(tenant)
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	return c.enqueueScoped(ctx, canonical, params)
}

func (c *Client) enqueueScoped(ctx context.Context, tenant string, params []JobParams) ([]Inserted, error) {
	if len(params) == 0 {
		return nil, nil
	}
	rows, err := c.encode(params)
	if err != nil {
		return nil, err
	}
	query := func(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
		return rls.Query(ctx, c.db, tenant, sql, args...)
	}
	res, err := insert(ctx, query, tenant, rows)
	if err == nil {
		c.notifier.notify(rows.queue...)
	}
	return res, err
}

// EnqueueManyTx stores jobs in tx in one statement for the tenant tx is
// scoped to, and returns their outcomes in order. Nothing is stored when
// one of them is invalid. tx must already be scoped to a tenant; it is
// never re-scoped, and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (c *Client) EnqueueManyTx(ctx context.Context, tx pgx.Tx, params []JobParams) ([]Inserted, error) {
	if len(params) == 0 {
		return nil, nil
	}
	rows, err := c.encode(params)
	if err != nil {
		return nil, err
	}
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	res, err := insert(ctx, tx.Query, tenant, rows)
	if err != nil {
		return nil, err
	}
	// Notified at the caller's commit, and not at all on rollback; each
	// queue at most once per FetchCooldown (see txNotifyLimiter).
	if queues := c.txNotify.due(rows.queue, time.Now(), c.cfg.FetchCooldown); len(queues) > 0 {
		if _, err := tx.Exec(ctx, notifySQL, queues); err != nil {
			return nil, fmt.Errorf("dlq: enqueue: notify: %w", err)
		}
	}
	return res, nil
}

func one(res []Inserted, err error) (Inserted, error) {
	if err != nil {
		return Inserted{}, err
	}
	return res[0], nil
}

// jobRows are validated job parameters as the columns of one INSERT.
type jobRows struct {
	queue, kind, payload, dedupKey []string
	priority                       []int16
	maxAttempts                    []int32
	runAt                          []*time.Time // nil: the database's now()
}

// encode validates every job before any reaches the database: PostgreSQL
// refuses NUL and invalid UTF-8 in text and jsonb, and one refused value
// would fail the whole statement with an error that names no job.
func (c *Client) encode(params []JobParams) (jobRows, error) {
	var r jobRows
	for i, p := range params {
		if err := validateParams(p); err != nil {
			return r, fmt.Errorf("%w: job %d: %v", ErrInvalidJob, i, err)
		}
		payload, err := encodePayload(p.Payload)
		if err != nil {
			return r, fmt.Errorf("%w: job %d: %v", ErrInvalidJob, i, err)
		}
		var runAt *time.Time
		if !p.RunAt.IsZero() {
			runAt = &p.RunAt
		}
		r.queue = append(r.queue, p.Queue)
		r.kind = append(r.kind, p.Kind)
		r.payload = append(r.payload, payload)
		r.dedupKey = append(r.dedupKey, p.DedupKey)
		r.priority = append(r.priority, p.Priority)
		r.maxAttempts = append(r.maxAttempts, int32(cmp.Or(p.MaxAttempts, c.cfg.MaxAttempts)))
		r.runAt = append(r.runAt, runAt)
	}
	return r, nil
}

func validateParams(p JobParams) error {
	switch {
	case p.Queue == "" || len(p.Queue) > 128:
		return fmt.Errorf("queue %q must have 1 to 128 characters", pgtext.Clean(p.Queue, 64))
	case len(p.Kind) > 128:
		return fmt.Errorf("kind must have at most 128 characters")
	case len(p.DedupKey) > 255:
		return fmt.Errorf("dedup key must have at most 255 characters")
	case p.MaxAttempts < 0 || p.MaxAttempts > 1_000_000:
		return fmt.Errorf("max attempts %d outside 0 to 1000000", p.MaxAttempts)
	}
	for name, s := range map[string]string{"queue": p.Queue, "kind": p.Kind, "dedup key": p.DedupKey} {
		if err := pgtext.CheckText(s); err != nil {
			return fmt.Errorf("%s %q: %v", name, pgtext.Clean(s, 64), err)
		}
	}
	return nil
}

// encodePayload returns the payload as JSON text that jsonb accepts.
func encodePayload(v any) (string, error) {
	var data []byte
	switch v := v.(type) {
	case nil:
		return "{}", nil
	case json.RawMessage:
		data = v
	case []byte:
		data = v
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			return "", fmt.Errorf("payload: %v", err)
		}
	}
	if err := pgtext.CheckJSON(data); err != nil {
		return "", fmt.Errorf("payload: %v", err)
	}
	return string(data), nil
}

// insertSQL inserts the jobs of tenant $1 with ids drawn beforehand, so
// each input row knows its id whether it was stored or skipped as a
// duplicate. created_at and a missing run_at come from the database's
// clock.
const insertSQL = `
WITH input AS MATERIALIZED (
    SELECT nextval('platform.dlq_jobs_id_seq') AS id, u.*
    FROM unnest($2::text[], $3::text[], $4::text[], $5::smallint[], $6::int[], $7::timestamptz[], $8::text[])
         WITH ORDINALITY AS u(queue, kind, payload, priority, max_attempts, run_at, dedup_key, ord)
), ins AS (
    INSERT INTO platform.dlq_jobs (id, tenant_id, queue, kind, payload, priority, max_attempts, run_at, dedup_key, created_at)
    SELECT id, $1::uuid, queue, kind, payload::jsonb, priority, max_attempts, coalesce(run_at, now()), NULLIF(dedup_key, ''), now()
    FROM input ORDER BY ord
    ON CONFLICT (tenant_id, queue, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT input.id, ins.id IS NULL FROM input LEFT JOIN ins ON ins.id = input.id ORDER BY input.ord`

const existingSQL = `
SELECT j.id FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(queue, dedup_key, ord)
LEFT JOIN platform.dlq_jobs j ON j.tenant_id = $1::uuid AND j.queue = u.queue AND j.dedup_key = u.dedup_key
ORDER BY u.ord`

// queryFunc runs one query: pgx.Tx.Query, a pool's, or a tenant-scoped
// rls.Query.
type queryFunc func(ctx context.Context, sql string, args ...any) (pgx.Rows, error)

// insertOneSQL is insertSQL for a single job: a plain VALUES row, which
// PostgreSQL plans and runs for less than the arrays of insertSQL. A
// duplicate returns no row.
const insertOneSQL = `
INSERT INTO platform.dlq_jobs (tenant_id, queue, kind, payload, priority, max_attempts, run_at, dedup_key, created_at)
VALUES ($1::uuid, $2, $3, $4::text::jsonb, $5, $6, coalesce($7::timestamptz, now()), NULLIF($8, ''), now())
ON CONFLICT (tenant_id, queue, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
RETURNING id`

// insertOneNoKeySQL is insertOneSQL for a job without a dedup key, which
// no other job can conflict with (the dedup index holds only keyed jobs,
// and the id comes from the sequence). Without ON CONFLICT, PostgreSQL
// inserts the row outright instead of speculatively: no check of the
// dedup index first, no speculative-insertion lock, no second write to
// confirm the row.
const insertOneNoKeySQL = `
INSERT INTO platform.dlq_jobs (tenant_id, queue, kind, payload, priority, max_attempts, run_at, created_at)
VALUES ($1::uuid, $2, $3, $4::text::jsonb, $5, $6, coalesce($7::timestamptz, now()), now())
RETURNING id`

func insert(ctx context.Context, query queryFunc, tenant string, r jobRows) ([]Inserted, error) {
	if len(r.queue) == 1 {
		return insertOne(ctx, query, tenant, r)
	}
	rows, err := query(ctx, insertSQL, tenant, r.queue, r.kind, r.payload, r.priority, r.maxAttempts, r.runAt, r.dedupKey)
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	defer rows.Close()
	res := make([]Inserted, 0, len(r.queue))
	var dupes []int
	for rows.Next() {
		var in Inserted
		if err := rows.Scan(&in.ID, &in.Duplicate); err != nil {
			rows.Close()
			return nil, fmt.Errorf("dlq: enqueue: %w", err)
		}
		if in.Duplicate {
			dupes = append(dupes, len(res))
		}
		res = append(res, in)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	if len(dupes) > 0 {
		if err := resolveDuplicates(ctx, query, tenant, r, res, dupes); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func insertOne(ctx context.Context, query queryFunc, tenant string, r jobRows) ([]Inserted, error) {
	var rows pgx.Rows
	var err error
	if r.dedupKey[0] == "" {
		rows, err = query(ctx, insertOneNoKeySQL, tenant, r.queue[0], r.kind[0], r.payload[0], r.priority[0], r.maxAttempts[0], r.runAt[0])
	} else {
		rows, err = query(ctx, insertOneSQL, tenant, r.queue[0], r.kind[0], r.payload[0], r.priority[0], r.maxAttempts[0], r.runAt[0], r.dedupKey[0])
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	if len(ids) == 1 {
		return []Inserted{{ID: ids[0]}}, nil
	}
	res := []Inserted{{Duplicate: true}}
	if err := resolveDuplicates(ctx, query, tenant, r, res, []int{0}); err != nil {
		return nil, err
	}
	return res, nil
}

// resolveDuplicates replaces the unused ids of skipped jobs by the ids of
// the jobs holding their dedup keys. It runs as a statement of its own so it
// sees jobs inserted by the same batch (in the caller's transaction) or
// committed by it (scoped queries).
func resolveDuplicates(ctx context.Context, query queryFunc, tenant string, r jobRows, res []Inserted, dupes []int) error {
	var queues, keys []string
	for _, i := range dupes {
		queues, keys = append(queues, r.queue[i]), append(keys, r.dedupKey[i])
	}
	rows, err := query(ctx, existingSQL, tenant, queues, keys)
	if err != nil {
		return fmt.Errorf("dlq: enqueue: find duplicates: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[*int64])
	if err != nil {
		return fmt.Errorf("dlq: enqueue: find duplicates: %w", err)
	}
	for n, i := range dupes {
		if ids[n] == nil {
			// The holder was deleted between the two statements (purged).
			return fmt.Errorf("dlq: enqueue: the job holding dedup key %q disappeared; retry", r.dedupKey[i])
		}
		res[i].ID = *ids[n]
	}
	return nil
}
