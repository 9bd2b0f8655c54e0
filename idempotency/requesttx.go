package idempotency

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/rls"
)

// ErrManagedTx is returned by Commit and Rollback of the transaction that
// a Transactional middleware hands to its handler (TxFrom): the middleware
// commits it with the stored response, or rolls it back, itself.
var ErrManagedTx = errors.New("idempotency: the request's transaction is committed or rolled back by the middleware")

var (
	// errKeyTaken: another request committed an entry for the key while
	// this one ran, so this one rolled back.
	errKeyTaken = errors.New("idempotency: the key was committed by another request")
	// errTxAborted: a statement of the handler failed, so the transaction
	// could only roll back.
	errTxAborted = errors.New("idempotency: the transaction was aborted by a failed statement")
)

// PostgreSQL error codes the commit tells apart.
const (
	uniqueViolation   = "23505"
	inFailedSQLTxCode = "25P02"
)

// requestTx is the transaction of one request in transactional mode, on a
// connection of its own. It costs the request no round trip beyond what the
// handler would spend on a transaction of its own: the BEGIN, the tenant,
// the key's advisory lock and its lookup travel as one batch, and the
// stored response travels with the COMMIT as another.
type requestTx struct {
	store     *Store
	conn      *pgxpool.Conn
	tx        pgx.Tx
	handlerTx *managedTx
	tenant    string
	key       string
	fp        Fingerprint
	endOnce   sync.Once
}

// beginRequest opens the transaction of a request with key and fp. When an
// entry or a concurrent holder decides the request instead (a replay, a
// mismatch, a live claim), it returns no transaction and the Claim or error
// of Store.Claim.
func (s *Store) beginRequest(ctx context.Context, key string, fp Fingerprint) (*requestTx, Claim, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return nil, Claim{}, err
	}
	acquireCtx, cancel := context.WithTimeout(ctx, s.cfg.AcquireTimeout)
	conn, err := s.db.Acquire(acquireCtx)
	cancel()
	if err != nil {
		return nil, Claim{}, fmt.Errorf("idempotency: begin: %w", err)
	}
	rt := &requestTx{store: s, conn: conn, tenant: tenant, key: key, fp: fp}
	var (
		b   pgx.Batch
		row scopedRow
	)
	b.BeginTx(pgx.TxOptions{})
	b.Queue(scopeAndLockSQL, tenant, key).QueryRow(func(r pgx.Row) error {
		return r.Scan(nil, &row.now, &row.locked)
	})
	b.Queue(entrySQL, tenant, key).Query(func(rows pgx.Rows) error {
		return scanEntry(rows, &row.entryRow)
	})
	br := conn.SendBatch(ctx, &b)
	rt.tx = br.Tx()
	rt.handlerTx = newManagedTx(rt.tx, tenant)
	if err := br.Close(); err != nil {
		rt.rollback(ctx)
		return nil, Claim{}, fmt.Errorf("idempotency: begin: %w", err)
	}
	claim, err := rt.decide(ctx, row)
	if err != nil || claim.Completed != nil {
		rt.rollback(ctx)
		return nil, claim, err
	}
	return rt, claim, nil
}

// scopeAndLockSQL opens a request's transaction: it scopes the
// transaction to tenant $1 (as rls.SetTenantSQL does), tries the advisory
// lock on key $2 under the name ClaimTx uses (lockNameOf, with the tenant
// the transaction is now scoped to) and reads the transaction's time, in
// one statement. Nothing in it reads a table, so nothing depends on the
// order in which PostgreSQL evaluates its columns.
var scopeAndLockSQL = `SELECT set_config('` + rls.Setting + `', $1, true), now(),
       pg_try_advisory_xact_lock(` + lockNameOf("$1") + `)`

// decide answers the request from the key's entry, read under the advisory
// lock when row.locked is true: the key is free (a zero Claim), or an entry
// or another holder decides it. A stale entry (expired, or a dead holder's
// claim on the same request) is deleted, so that the response is stored
// with a plain INSERT, which fails rather than overwrite an entry another
// request committed meanwhile. Every time is the transaction's now().
func (rt *requestTx) decide(ctx context.Context, row scopedRow) (Claim, error) {
	s := rt.store
	locked := row.locked != nil && *row.locked
	busy := &InProgressError{LeaseUntil: row.now.Add(s.cfg.Lease)}
	entry, err := s.decode(row, rt.tenant, rt.key, false)
	if errors.Is(err, ErrNotFound) {
		if !locked {
			return Claim{}, busy // another transaction is claiming the key
		}
		return Claim{LeaseUntil: busy.LeaseUntil}, nil
	}
	if err != nil {
		return Claim{}, err
	}
	if entry.ExpiresAt.After(row.now) && !takeable(entry, rt.fp, row.now) {
		return existingClaim(entry, rt.fp)
	}
	if !locked {
		return Claim{}, busy
	}
	tag, err := rt.tx.Exec(ctx, deleteStaleSQL, rt.tenant, rt.key, rt.fp[:])
	if err != nil {
		return Claim{}, fmt.Errorf("idempotency: claim: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return Claim{}, busy // a request in claim mode took it over first
	}
	return Claim{LeaseUntil: busy.LeaseUntil}, nil
}

const deleteStaleSQL = `
DELETE FROM platform.idempotency_keys
WHERE tenant_id = $1 AND key = $2
  AND (expires_at <= now() OR (state = 'in_progress' AND lease_until <= now() AND fingerprint = $3))`

// insertCompletedSQL stores the response. now() is the transaction's start,
// when the key was locked and looked up: the entry's creation, as a claim
// mode claim's; its expiry runs from there.
const insertCompletedSQL = `
INSERT INTO platform.idempotency_keys
    (tenant_id, key, fingerprint, state, response_status, response_headers, response_body,
     body_omitted, created_at, completed_at, expires_at)
VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7, now(), now(), now() + $8::interval)`

// commit stores resp as the key's entry and commits it with the handler's
// writes, in one round trip. It returns errKeyTaken when another request
// committed the key first and errTxAborted when a statement of the handler
// had failed; in both cases nothing was committed.
func (rt *requestTx) commit(ctx context.Context, resp Response) error {
	if !rt.end() {
		return pgx.ErrTxClosed
	}
	defer rt.conn.Release()
	headers, body, err := encodeResponse(resp)
	if err != nil {
		_ = rt.tx.Rollback(ctx)
		return err
	}
	var b pgx.Batch
	b.Queue(insertCompletedSQL, rt.tenant, rt.key, rt.fp[:], resp.Status, headers, body, resp.BodyOmitted,
		rt.store.cfg.TTL)
	b.Queue("COMMIT")
	err = rt.conn.SendBatch(ctx, &b).Close()
	if err == nil && rt.conn.Conn().PgConn().TxStatus() == 'I' {
		return nil
	}
	// The batch stopped at its first failure, before the COMMIT: roll the
	// transaction back so the connection goes back to the pool clean. (A
	// broken connection is closed instead, and the pool drops it.)
	_ = rt.tx.Rollback(ctx)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == uniqueViolation:
		return errKeyTaken
	case errors.As(err, &pgErr) && pgErr.Code == inFailedSQLTxCode:
		return errTxAborted
	case err == nil:
		return errors.New("idempotency: commit: the transaction did not end")
	default:
		return fmt.Errorf("idempotency: commit: %w", err)
	}
}

// rollback rolls the transaction back, freeing the key, and gives the
// connection back. It does nothing once the transaction has ended.
func (rt *requestTx) rollback(ctx context.Context) {
	if !rt.end() {
		return
	}
	_ = rt.tx.Rollback(ctx) // ErrTxClosed when the begin never reached the server
	rt.conn.Release()
}

// end closes the handler's view of the transaction; it reports false when
// the transaction had already ended.
func (rt *requestTx) end() bool {
	ended := false
	rt.endOnce.Do(func() {
		rt.handlerTx.close()
		ended = true
	})
	return ended
}

// managedTx is the transaction as the handler sees it: every statement goes
// to the request's transaction, Commit and Rollback are refused, and once
// the middleware has ended the transaction every method fails with
// pgx.ErrTxClosed, so a handler that kept it cannot reach the connection's
// next user.
type managedTx struct {
	live   atomic.Pointer[txRef]
	tenant string
}

type txRef struct{ pgx.Tx }

// closedTx answers for a managedTx that has ended: a transaction of pgx's
// own that is already closed, so every method fails as pgx's would.
var closedTx = func() pgx.Tx {
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	return pgx.FailedBatchResults(&b, pgx.ErrTxClosed).Tx()
}()

func newManagedTx(tx pgx.Tx, tenant string) *managedTx {
	t := &managedTx{tenant: tenant}
	t.live.Store(&txRef{tx})
	return t
}

func (t *managedTx) close() { t.live.Store(nil) }

// ScopedTenant is the tenant the middleware scoped the transaction to, so
// that a …Tx call of another package (rls.CheckTx) spends no round trip
// asking the server; "" once the transaction has ended.
func (t *managedTx) ScopedTenant() string {
	if t.live.Load() == nil {
		return ""
	}
	return t.tenant
}

func (t *managedTx) current() pgx.Tx {
	if ref := t.live.Load(); ref != nil {
		return ref.Tx
	}
	return closedTx
}

// Begin starts a pseudo nested transaction (a savepoint) within the
// request's transaction.
func (t *managedTx) Begin(ctx context.Context) (pgx.Tx, error) { return t.current().Begin(ctx) }

// Commit returns ErrManagedTx: the middleware commits.
func (t *managedTx) Commit(context.Context) error { return ErrManagedTx }

// Rollback returns ErrManagedTx: answer with a 5xx status to have the
// middleware roll back.
func (t *managedTx) Rollback(context.Context) error { return ErrManagedTx }

// CopyFrom is pgx.Tx's CopyFrom in the request's transaction.
func (t *managedTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.current().CopyFrom(ctx, table, columns, src)
}

// SendBatch is pgx.Tx's SendBatch in the request's transaction.
func (t *managedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.current().SendBatch(ctx, b)
}

// LargeObjects is pgx.Tx's LargeObjects in the request's transaction.
func (t *managedTx) LargeObjects() pgx.LargeObjects { return t.current().LargeObjects() }

// Prepare is pgx.Tx's Prepare in the request's transaction.
func (t *managedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.current().Prepare(ctx, name, sql)
}

// Exec is pgx.Tx's Exec in the request's transaction.
func (t *managedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.current().Exec(ctx, sql, args...)
}

// Query is pgx.Tx's Query in the request's transaction.
func (t *managedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.current().Query(ctx, sql, args...)
}

// QueryRow is pgx.Tx's QueryRow in the request's transaction.
func (t *managedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.current().QueryRow(ctx, sql, args...)
}

// Conn returns the connection of the request's transaction, nil once it
// has ended.
func (t *managedTx) Conn() *pgx.Conn { return t.current().Conn() }
