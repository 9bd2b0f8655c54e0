package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// Enqueue stores one job in its own transaction scoped to p.Tenant. Use
// EnqueueTx to make the job atomic with the caller's writes.
func (c *Client) Enqueue(ctx context.Context, p JobParams) (Inserted, error) {
	res, err := c.EnqueueMany(ctx, []JobParams{p})
	if err != nil {
		return Inserted{}, err
	}
	return res[0], nil
}

// EnqueueTx stores one job in tx: it exists, and wakes the workers, only if
// tx commits. tx must be allowed to write the job's tenant — for the app
// role, scoped to it (tenancy.InTx or tenancy.InTenantTx).
func (c *Client) EnqueueTx(ctx context.Context, tx DBTX, p JobParams) (Inserted, error) {
	res, err := c.EnqueueManyTx(ctx, tx, []JobParams{p})
	if err != nil {
		return Inserted{}, err
	}
	return res[0], nil
}

// EnqueueMany stores jobs of one tenant in one statement scoped to it, and
// returns their outcomes in order. Jobs of different tenants are refused
// with ErrMixedTenants.
func (c *Client) EnqueueMany(ctx context.Context, params []JobParams) ([]Inserted, error) {
	if len(params) == 0 {
		return nil, nil
	}
	rows, err := c.encode(params)
	if err != nil {
		return nil, err
	}
	for _, tenant := range rows.tenant[1:] {
		if tenant != rows.tenant[0] {
			return nil, ErrMixedTenants
		}
	}
	res, err := insert(ctx, c.scopedQuery(rows.tenant[0]), rows, c.cfg.Now())
	if err == nil {
		c.notifier.notify(rows.queue...)
	}
	return res, err
}

// EnqueueManyTx stores jobs in tx in one statement and returns their
// outcomes in order. Nothing is stored when one of them is invalid.
func (c *Client) EnqueueManyTx(ctx context.Context, tx DBTX, params []JobParams) ([]Inserted, error) {
	if len(params) == 0 {
		return nil, nil
	}
	rows, err := c.encode(params)
	if err != nil {
		return nil, err
	}
	res, err := insert(ctx, tx.Query, rows, c.cfg.Now())
	if err != nil {
		return nil, err
	}
	// Notified at the caller's commit, and not at all on rollback.
	if _, err := tx.Exec(ctx, notifySQL, uniq(rows.queue)); err != nil {
		return nil, fmt.Errorf("dlq: enqueue: notify: %w", err)
	}
	return res, nil
}

// jobRows are validated job parameters as the columns of one INSERT.
type jobRows struct {
	tenant, queue, kind, payload, dedupKey []string
	priority                               []int16
	maxAttempts                            []int32
	runAt                                  []time.Time
}

func (c *Client) encode(params []JobParams) (jobRows, error) {
	now := c.cfg.Now()
	var r jobRows
	for i, p := range params {
		tenant, err := rls.ParseTenant(p.Tenant)
		if err != nil {
			return r, fmt.Errorf("%w: job %d: %v", ErrInvalidJob, i, err)
		}
		if err := validateParams(p); err != nil {
			return r, fmt.Errorf("%w: job %d: %v", ErrInvalidJob, i, err)
		}
		payload, err := encodePayload(p.Payload)
		if err != nil {
			return r, fmt.Errorf("%w: job %d: %v", ErrInvalidJob, i, err)
		}
		runAt := p.RunAt
		if runAt.IsZero() {
			runAt = now
		}
		r.tenant = append(r.tenant, tenant)
		r.queue = append(r.queue, p.Queue)
		r.kind = append(r.kind, p.Kind)
		r.payload = append(r.payload, payload)
		r.dedupKey = append(r.dedupKey, p.DedupKey)
		r.priority = append(r.priority, p.Priority)
		r.maxAttempts = append(r.maxAttempts, int32(orDefault(p.MaxAttempts, c.cfg.MaxAttempts)))
		r.runAt = append(r.runAt, runAt)
	}
	return r, nil
}

func validateParams(p JobParams) error {
	switch {
	case p.Queue == "" || len(p.Queue) > 128:
		return fmt.Errorf("queue %q must have 1 to 128 characters", truncate(p.Queue))
	case len(p.Kind) > 128:
		return fmt.Errorf("kind must have at most 128 characters")
	case len(p.DedupKey) > 255:
		return fmt.Errorf("dedup key must have at most 255 characters")
	case p.MaxAttempts < 0 || p.MaxAttempts > 1_000_000:
		return fmt.Errorf("max attempts %d outside 0 to 1000000", p.MaxAttempts)
	}
	return nil
}

// encodePayload returns the payload as JSON text.
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
	if !json.Valid(data) {
		return "", fmt.Errorf("payload is not valid JSON")
	}
	// PostgreSQL's jsonb refuses the NUL character that JSON allows. In
	// valid JSON it can only appear escaped, so look closer only then.
	if bytes.Contains(data, []byte(`\u0000`)) {
		var probe any
		if err := json.Unmarshal(data, &probe); err != nil || containsNUL(probe) {
			return "", fmt.Errorf("payload holds a NUL character, which jsonb cannot store")
		}
	}
	return string(data), nil
}

func containsNUL(v any) bool {
	switch v := v.(type) {
	case string:
		for i := 0; i < len(v); i++ {
			if v[i] == 0 {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if containsNUL(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if containsNUL(k) || containsNUL(e) {
				return true
			}
		}
	}
	return false
}

func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}

// insertSQL inserts the jobs with ids drawn beforehand, so each input row
// knows its id whether it was stored or skipped as a duplicate.
const insertSQL = `
WITH input AS MATERIALIZED (
    SELECT nextval('platform.dlq_jobs_id_seq') AS id, u.*
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::int[], $7::timestamptz[], $8::text[])
         WITH ORDINALITY AS u(tenant_id, queue, kind, payload, priority, max_attempts, run_at, dedup_key, ord)
), ins AS (
    INSERT INTO platform.dlq_jobs (id, tenant_id, queue, kind, payload, priority, max_attempts, run_at, dedup_key, created_at)
    SELECT id, tenant_id::uuid, queue, kind, payload::jsonb, priority, max_attempts, run_at, NULLIF(dedup_key, ''), $9
    FROM input ORDER BY ord
    ON CONFLICT (tenant_id, queue, dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT input.id, ins.id IS NULL FROM input LEFT JOIN ins ON ins.id = input.id ORDER BY input.ord`

const existingSQL = `
SELECT j.id FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(tenant_id, queue, dedup_key, ord)
LEFT JOIN platform.dlq_jobs j ON j.tenant_id = u.tenant_id::uuid AND j.queue = u.queue AND j.dedup_key = u.dedup_key
ORDER BY u.ord`

func insert(ctx context.Context, query queryFunc, r jobRows, now time.Time) ([]Inserted, error) {
	rows, err := query(ctx, insertSQL, r.tenant, r.queue, r.kind, r.payload, r.priority, r.maxAttempts, r.runAt, r.dedupKey, now)
	if err != nil {
		return nil, fmt.Errorf("dlq: enqueue: %w", err)
	}
	defer rows.Close()
	res := make([]Inserted, 0, len(r.tenant))
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
		if err := resolveDuplicates(ctx, query, r, res, dupes); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// resolveDuplicates replaces the unused ids of skipped jobs by the ids of
// the jobs holding their dedup keys. It runs as a statement of its own so it
// sees jobs inserted by the same batch (in the caller's transaction) or
// committed by it (scoped queries).
func resolveDuplicates(ctx context.Context, query queryFunc, r jobRows, res []Inserted, dupes []int) error {
	var tenants, queues, keys []string
	for _, i := range dupes {
		tenants, queues, keys = append(tenants, r.tenant[i]), append(queues, r.queue[i]), append(keys, r.dedupKey[i])
	}
	rows, err := query(ctx, existingSQL, tenants, queues, keys)
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

// queryFunc runs one query: pgx.Tx.Query, or a tenant-scoped query.
type queryFunc func(ctx context.Context, sql string, args ...any) (pgx.Rows, error)

// scopedQuery runs a query scoped to tenant in one round trip: set_config
// and the query go out as one pipelined batch, which PostgreSQL runs as one
// implicit transaction (one Sync), so the transaction-local setting covers
// the query and ends with it, and the query's writes commit (or roll back)
// together.
func (c *Client) scopedQuery(tenant string) queryFunc {
	return func(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
		b := &pgx.Batch{}
		b.Queue("SELECT set_config('"+rls.Setting+"', $1, true)", tenant)
		b.Queue(sql, args...)
		br := c.pool.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
		rows, err := br.Query()
		if err != nil {
			_ = br.Close()
			return nil, err
		}
		return &batchRows{Rows: rows, batch: br}, nil
	}
}

// batchRows closes its batch with its rows, and reports the batch's error
// (the implicit transaction's commit) as its own.
type batchRows struct {
	pgx.Rows
	batch    pgx.BatchResults
	closed   bool
	closeErr error
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.closeErr = r.batch.Close()
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.closeErr
}
