package idempotency

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

const (
	// DefaultTTL is StoreConfig.TTL's default: how long an entry is kept.
	DefaultTTL = 24 * time.Hour
	// DefaultLease is StoreConfig.Lease's default: how long a claim is held
	// before another request may take it over.
	DefaultLease = time.Minute
)

// State is the state of an entry.
type State string

const (
	// StateInProgress: a request holds the claim and runs the operation.
	StateInProgress State = "in_progress"
	// StateCompleted: the operation finished and its response is stored.
	StateCompleted State = "completed"
)

// DB is the database a Store runs on: the library's database interface
// (Exec, Query, QueryRow, SendBatch and Begin, as on every package's DB)
// plus Acquire, because the middleware's transactional mode holds one
// connection for a request so that its stored response travels with the
// COMMIT in one round trip. *pgxpool.Pool satisfies it, as does a wrapper
// that forwards these methods.
type DB interface {
	dbx.DB
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}

// StoreConfig configures a Store. The zero value is usable: every field
// documents its default.
//
// Leases and expiries are computed by the database (now() in the statement
// that writes them), never from the process clock, so instances whose
// clocks differ agree on when a claim or an entry runs out.
type StoreConfig struct {
	// TTL is how long an entry is kept after it is claimed; once it has
	// passed, the key is free again and the sweeper deletes the entry. A
	// claim whose lease is renewed past the TTL is kept until its lease
	// ends: an entry never expires under a live holder. Default: DefaultTTL
	// (24 hours). Must not be negative.
	TTL time.Duration
	// Lease is how long a claim is held. A claim not completed or released
	// within it (its holder died) can be claimed again by a request with the
	// same fingerprint. Set it above the slowest operation's duration, or
	// renew it (the middleware does): a holder whose lease ran out gets
	// ErrClaimLost from Complete once another request took the key over.
	// Default: DefaultLease (1 minute). Must not be negative nor exceed TTL.
	Lease time.Duration
	// AcquireTimeout bounds how long a request in transactional mode waits
	// for a connection of its own; past it the middleware answers 503 with
	// Retry-After instead of queueing behind an exhausted pool for as long
	// as the client waits. Default: DefaultAcquireTimeout (5 seconds). Must
	// not be negative.
	AcquireTimeout time.Duration
}

// DefaultAcquireTimeout is StoreConfig.AcquireTimeout's default.
const DefaultAcquireTimeout = 5 * time.Second

func (c *StoreConfig) setDefaults() error {
	if c.TTL < 0 || c.Lease < 0 || c.AcquireTimeout < 0 {
		return errs.Config("idempotency", "TTL, Lease and AcquireTimeout must not be negative")
	}
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.Lease = cmp.Or(c.Lease, DefaultLease)
	c.AcquireTimeout = cmp.Or(c.AcquireTimeout, DefaultAcquireTimeout)
	if c.Lease > c.TTL {
		return errs.Config("idempotency", "Lease %s exceeds TTL %s", c.Lease, c.TTL)
	}
	return nil
}

// Store keeps idempotency keys in platform.idempotency_keys. It is safe for
// concurrent use.
//
// The methods without the Tx suffix read the tenant from the context
// (tenancy.WithTenant) and return ErrNoTenant without one; each runs in a
// tenant-scoped transaction of its own, sent as one pipelined batch: one
// round trip. The …Tx variants run in the caller's transaction, so the key
// commits or rolls back with the caller's writes; they take the tenant the
// transaction is scoped to.
type Store struct {
	db  DB
	cfg StoreConfig
}

// NewStore returns a Store on db, normally a pool of the application role
// (row-level security binds it).
func NewStore(db DB, cfg StoreConfig) (*Store, error) {
	if db == nil {
		return nil, errs.Config("idempotency", "nil database")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Store{db: db, cfg: cfg}, nil
}

// Response is a stored HTTP response (or any operation's result, encoded
// as one).
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the stored headers.
	Header http.Header
	// Body is the response body; empty when BodyOmitted.
	Body []byte
	// BodyOmitted reports that the body was larger than the middleware's
	// MaxResponseBytes and was not stored, so it cannot be replayed.
	BodyOmitted bool
}

// Claim is the result of a successful Store.Claim: either this caller now
// holds the key (Token is set) or the key was completed before for the same
// request (Completed is set).
type Claim struct {
	// Token identifies the claim; pass it to Complete, Renew or Release.
	// Empty when Completed is set.
	Token string
	// LeaseUntil is when the claim expires if neither completed, renewed
	// nor released, by the database's clock.
	LeaseUntil time.Time
	// Completed is the stored response of an earlier request with this key
	// and fingerprint: return it and do not run the operation again.
	Completed *Response
}

// Entry is a stored key as Lookup returns it. Its times are the database's.
type Entry struct {
	TenantID    string
	Key         string
	Fingerprint Fingerprint
	State       State
	// LeaseUntil is set while the state is StateInProgress.
	LeaseUntil time.Time
	// Response is set once the state is StateCompleted.
	Response  *Response
	CreatedAt time.Time
	// ExpiresAt is when the key becomes free again: TTL after CreatedAt,
	// or later when a renewed lease outlasts that.
	ExpiresAt time.Time
}

// Claim claims key for the request identified by fp, in one atomic
// statement (INSERT … ON CONFLICT DO UPDATE): of concurrent callers with
// one key exactly one gets a Token. It returns
//
//   - a Claim with a Token when the key was free, expired, or held under an
//     expired lease by a request with the same fingerprint;
//   - a Claim with Completed when the key was completed with the same
//     fingerprint;
//   - a *InProgressError (ErrInProgress) when another request holds it;
//   - ErrFingerprintMismatch when the key belongs to a different request.
func (s *Store) Claim(ctx context.Context, key string, fp Fingerprint) (Claim, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return Claim{}, err
	}
	for range claimAttempts {
		c, retry, err := s.claimOnce(ctx, tenant, key, fp)
		if !retry {
			return c, err
		}
	}
	return Claim{}, fmt.Errorf("idempotency: claim: key %q changed %d times during the claim", key, claimAttempts)
}

// claimOnce sends one batch that claims key if it is free and reads the
// entry otherwise. It reports retry when the entry that blocked the claim
// was gone by the time it was read (released or swept in between).
func (s *Store) claimOnce(ctx context.Context, tenant, key string, fp Fingerprint) (c Claim, retry bool, err error) {
	token := uuid.NewString()
	var (
		granted    bool
		leaseUntil time.Time
		row        scopedRow
	)
	err = rls.Batch(ctx, s.db, tenant, func(b *pgx.Batch) {
		b.Queue(claimIfFreeSQL, tenant, key, fp[:], token, s.cfg.Lease, s.cfg.TTL).QueryRow(func(r pgx.Row) error {
			var err error
			granted, err = scanOptional(r, &leaseUntil)
			return err
		})
		b.Queue(lookupSQL, tenant, key).QueryRow(func(r pgx.Row) error {
			return r.Scan(row.scanner(false))
		})
	}, nil)
	if err != nil {
		return Claim{}, false, fmt.Errorf("idempotency: claim: %w", err)
	}
	if granted {
		return Claim{Token: token, LeaseUntil: leaseUntil}, false, nil
	}
	entry, err := s.decode(row, tenant, key, false)
	if errors.Is(err, ErrNotFound) {
		return Claim{}, true, nil
	}
	if err != nil {
		return Claim{}, false, err
	}
	c, err = existingClaim(entry, fp)
	return c, false, err
}

// scanOptional scans a row that may not exist, reporting whether it did.
func scanOptional(r pgx.Row, dest ...any) (bool, error) {
	err := r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ClaimTx is Claim in the caller's transaction tx. tx must already be
// scoped to a tenant; it is never re-scoped, and a context naming another
// tenant is refused with a *tenancy.TenantMismatchError. A transaction not
// scoped to a tenant gets ErrNoTenant.
//
// The claim is invisible to other transactions until tx commits; so that a
// concurrent ClaimTx with the same key gets ErrInProgress at once instead
// of waiting for tx to finish, ClaimTx first takes a transaction-level
// advisory lock on (tenant, key); when another transaction holds it,
// ClaimTx answers from the committed entry (a replay, a mismatch) or with
// ErrInProgress, without waiting.
func (s *Store) ClaimTx(ctx context.Context, tx pgx.Tx, key string, fp Fingerprint) (Claim, error) {
	if err := ValidKey(key); err != nil {
		return Claim{}, err
	}
	ctxTenant, _ := tenancy.TenantFrom(ctx)
	var row scopedRow
	if err := tx.QueryRow(ctx, lockAndLookupSQL, ctxTenant, key).Scan(row.scanner(true)); err != nil {
		return Claim{}, fmt.Errorf("idempotency: lock key: %w", err)
	}
	tenant, err := checkScope(ctxTenant, row.tenant)
	if err != nil {
		return Claim{}, err
	}
	entry, err := s.decode(row, tenant, key, true)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Claim{}, err
	}
	found := err == nil
	if found && !takeable(entry, fp, row.now) {
		return existingClaim(entry, fp) // a replay, a mismatch or a live claim
	}
	if row.locked == nil || !*row.locked {
		// Another transaction is claiming the key and has not committed.
		leaseUntil := row.now.Add(s.cfg.Lease)
		if found {
			leaseUntil = entry.LeaseUntil
		}
		return Claim{}, &InProgressError{LeaseUntil: leaseUntil}
	}
	return s.claim(ctx, tx, tenant, key, fp)
}

// takeOverSQL ends the claim statements: an entry that conflicts is taken
// over only when it expired, or is a dead holder's claim on the same
// request whose lease ran out. A live claim never has expired: Renew keeps
// expires_at at or after lease_until (and a CHECK constraint holds it).
const takeOverSQL = `
ON CONFLICT (tenant_id, key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint, state = 'in_progress',
    lease_token = EXCLUDED.lease_token, lease_until = EXCLUDED.lease_until,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    response_status = NULL, response_headers = NULL, response_body = NULL,
    body_omitted = false, completed_at = NULL
WHERE k.expires_at <= now()
   OR (k.state = 'in_progress' AND k.lease_until <= now()
       AND k.fingerprint = EXCLUDED.fingerprint)
RETURNING k.lease_until`

// claimSQL claims key $2 of tenant $1 for fingerprint $3 under token $4,
// with a lease of $5 and an expiry of $6 from the database's now().
const claimSQL = `
INSERT INTO platform.idempotency_keys AS k
    (tenant_id, key, fingerprint, state, lease_token, lease_until, created_at, expires_at)
VALUES ($1, $2, $3, 'in_progress', $4, now() + $5::interval, now(), now() + $6::interval)` + takeOverSQL

// claimIfFreeSQL is claimSQL guarded so that it writes nothing when an
// entry decides the claim (a replay, a mismatch, a live claim): retries of
// completed requests, the common case, thus take no row lock and commit
// nothing to disk. A racing insert still meets ON CONFLICT.
const claimIfFreeSQL = `
INSERT INTO platform.idempotency_keys AS k
    (tenant_id, key, fingerprint, state, lease_token, lease_until, created_at, expires_at)
SELECT $1::uuid, $2::text, $3::bytea, 'in_progress', $4::uuid,
       now() + $5::interval, now(), now() + $6::interval
WHERE NOT EXISTS (
    SELECT 1 FROM platform.idempotency_keys e
    WHERE e.tenant_id = $1::uuid AND e.key = $2::text AND e.expires_at > now()
      AND NOT (e.state = 'in_progress' AND e.lease_until <= now() AND e.fingerprint = $3::bytea))` +
	takeOverSQL

// claimAttempts bounds the retries when the conflicting entry disappears
// (released or swept) between the claim and the read of that entry.
const claimAttempts = 3

// takeable reports whether an unexpired entry may be claimed by the
// request fp at the database's time now: only a dead holder's claim on the
// same request, whose lease ran out.
func takeable(e Entry, fp Fingerprint, now time.Time) bool {
	return e.State == StateInProgress && e.Fingerprint == fp && !e.LeaseUntil.After(now)
}

func (s *Store) claim(ctx context.Context, tx pgx.Tx, tenant, key string, fp Fingerprint) (Claim, error) {
	for range claimAttempts {
		token := uuid.NewString()
		var leaseUntil time.Time
		err := tx.QueryRow(ctx, claimSQL, tenant, key, fp[:], token, s.cfg.Lease, s.cfg.TTL).Scan(&leaseUntil)
		if err == nil {
			return Claim{Token: token, LeaseUntil: leaseUntil}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Claim{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		var row scopedRow
		if err := tx.QueryRow(ctx, lookupSQL, tenant, key).Scan(row.scanner(false)); err != nil {
			return Claim{}, fmt.Errorf("idempotency: look up: %w", err)
		}
		entry, err := s.decode(row, tenant, key, false)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Claim{}, err
		}
		return existingClaim(entry, fp)
	}
	return Claim{}, fmt.Errorf("idempotency: claim: key %q changed %d times during the claim", key, claimAttempts)
}

// existingClaim answers a claim on a key held by an entry that could not be
// taken over.
func existingClaim(e Entry, fp Fingerprint) (Claim, error) {
	if e.Fingerprint != fp {
		return Claim{}, ErrFingerprintMismatch
	}
	if e.State == StateCompleted {
		return Claim{Completed: e.Response}, nil
	}
	return Claim{}, &InProgressError{LeaseUntil: e.LeaseUntil}
}

// Lookup returns the unexpired entry of key, or ErrNotFound.
func (s *Store) Lookup(ctx context.Context, key string) (Entry, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	var row scopedRow
	err = rls.Batch(ctx, s.db, tenant, func(b *pgx.Batch) {
		b.Queue(lookupSQL, tenant, key).QueryRow(func(r pgx.Row) error {
			return r.Scan(row.scanner(false))
		})
	}, nil)
	if err != nil {
		return Entry{}, fmt.Errorf("idempotency: look up: %w", err)
	}
	return s.decode(row, tenant, key, true)
}

// LookupTx is Lookup in the caller's transaction tx. tx must already be
// scoped to a tenant; it is never re-scoped, and a context naming another
// tenant is refused with a *tenancy.TenantMismatchError.
func (s *Store) LookupTx(ctx context.Context, tx pgx.Tx, key string) (Entry, error) {
	if err := ValidKey(key); err != nil {
		return Entry{}, err
	}
	ctxTenant, _ := tenancy.TenantFrom(ctx)
	var row scopedRow
	if err := tx.QueryRow(ctx, lookupSQL, ctxTenant, key).Scan(row.scanner(false)); err != nil {
		return Entry{}, fmt.Errorf("idempotency: look up: %w", err)
	}
	tenant, err := checkScope(ctxTenant, row.tenant)
	if err != nil {
		return Entry{}, err
	}
	return s.decode(row, tenant, key, true)
}

// scopeSQL reads, in the statement that uses it, the tenant the
// transaction is scoped to (NULL when none) and the database's time. The
// statements built on it take the context's tenant as $1 ("" when the
// context names none) and touch no row unless it matches the
// transaction's: a …Tx call whose context names another tenant writes
// nothing, and the caller learns of the mismatch from the tenant column
// without a round trip of its own.
const scopeSQL = `(SELECT NULLIF(current_setting('` + rls.Setting + `', true), '') AS tenant, now() AS now)`

// scopeMatchSQL is true when the context's tenant ($1) is the
// transaction's (s.tenant), or the context names none.
const scopeMatchSQL = `(s.tenant = $1 OR $1 = '')`

// entryColumnsSQL are the columns of an entry that entryRow scans.
const entryColumnsSQL = `k.fingerprint, k.state, k.lease_until, k.response_status, k.response_headers,
       k.response_body, k.body_omitted, k.created_at, k.expires_at`

// lookupSQL reads the transaction's tenant, the database's time and the
// entry of key $2 (NULLs when there is none).
const lookupSQL = `
SELECT s.tenant, s.now, ` + entryColumnsSQL + `
FROM ` + scopeSQL + ` s
LEFT JOIN platform.idempotency_keys k
       ON ` + scopeMatchSQL + ` AND k.tenant_id = s.tenant::uuid AND k.key = $2`

// entrySQL reads the entry of key $2 of tenant $1, no row when there is
// none, for a caller that scoped the transaction or batch to $1 itself in
// an earlier statement (a statement of its own, so that row-level security
// sees the tenant): the scope check of lookupSQL, and its outer join, have
// nothing to do there.
const entrySQL = `SELECT ` + entryColumnsSQL + `
FROM platform.idempotency_keys k WHERE k.tenant_id = $1::uuid AND k.key = $2`

// scanEntry scans the row of entrySQL into e, if there is one; without
// one e stays empty, which decode reads as ErrNotFound.
func scanEntry(rows pgx.Rows, e *entryRow) error {
	if rows.Next() {
		if err := rows.Scan(e.dest()...); err != nil {
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

// lockNameOf is the advisory lock's name for key $2, computed in SQL from
// tenant, an SQL expression for the tenant the transaction is scoped to.
// ClaimTx and transactional mode both take their lock under this name, so
// they exclude each other.
func lockNameOf(tenant string) string {
	return `hashtextextended(` + tenant + ` || '/' || $2, 0)`
}

// lockAndLookupSQL is lookupSQL that also tries the transaction-level
// advisory lock on the key, only when the tenants match, so a refused call
// leaves no lock behind.
var lockAndLookupSQL = `
SELECT s.tenant, s.now, ` + entryColumnsSQL + `,
       CASE WHEN ` + scopeMatchSQL + ` THEN pg_try_advisory_xact_lock(` + lockNameOf("s.tenant") + `) END
FROM ` + scopeSQL + ` s
LEFT JOIN platform.idempotency_keys k
       ON ` + scopeMatchSQL + ` AND k.tenant_id = s.tenant::uuid AND k.key = $2`

// checkScope applies the rule of every …Tx method (rls.CheckTx's) to the
// tenant a statement read from the transaction: it must be scoped, and to
// the context's tenant when the context names one.
func checkScope(ctxTenant string, txTenant *string) (string, error) {
	if txTenant == nil {
		return "", ErrNoTenant
	}
	if ctxTenant != "" && ctxTenant != *txTenant {
		return "", &errs.TenantMismatchError{Context: ctxTenant, Transaction: *txTenant}
	}
	return *txTenant, nil
}

// scopedRow holds what lookupSQL and lockAndLookupSQL return.
type scopedRow struct {
	tenant *string
	now    time.Time
	locked *bool
	entryRow
}

// scanner returns what scans a row of lookupSQL (or, withLock, of
// lockAndLookupSQL) into r, as one pgx.RowScanner: a key without an entry,
// every first request, decodes only the tenant, the time and the lock, and
// leaves the entry's nine NULL columns unscanned (pgx would otherwise plan
// and run a scan for each).
func (r *scopedRow) scanner(withLock bool) scopedScanner {
	return scopedScanner{row: r, withLock: withLock}
}

type scopedScanner struct {
	row      *scopedRow
	withLock bool
}

// ScanRow implements pgx.RowScanner.
func (s scopedScanner) ScanRow(rows pgx.Rows) error {
	values := rows.RawValues()
	const stateColumn = 3 // after tenant, now and fingerprint
	if len(values) <= stateColumn || values[stateColumn] != nil {
		return rows.Scan(s.row.dest(s.withLock)...) // an entry (or an unexpected shape: let Scan say so)
	}
	m := rows.Conn().TypeMap()
	fields := rows.FieldDescriptions()
	scan := func(i int, dst any) error {
		if err := m.Scan(fields[i].DataTypeOID, fields[i].Format, values[i], dst); err != nil {
			return pgx.ScanArgError{ColumnIndex: i, FieldName: fields[i].Name, Err: err}
		}
		return nil
	}
	if err := scan(0, &s.row.tenant); err != nil {
		return err
	}
	if err := scan(1, &s.row.now); err != nil {
		return err
	}
	if s.withLock {
		return scan(len(values)-1, &s.row.locked)
	}
	return nil
}

func (r *scopedRow) dest(withLock bool) []any {
	dest := append([]any{&r.tenant, &r.now}, r.entryRow.dest()...)
	if withLock {
		dest = append(dest, &r.locked)
	}
	return dest
}

// entryRow holds the scanned columns of an entry, all nullable so that an
// outer join's missing row scans too.
type entryRow struct {
	fingerprint []byte
	state       *State
	leaseUntil  *time.Time
	status      *int
	headers     []byte
	body        []byte
	omitted     *bool
	createdAt   *time.Time
	expiresAt   *time.Time
}

func (r *entryRow) dest() []any {
	return []any{&r.fingerprint, &r.state, &r.leaseUntil, &r.status, &r.headers, &r.body,
		&r.omitted, &r.createdAt, &r.expiresAt}
}

// decode turns a scanned row into an Entry; a missing one is ErrNotFound,
// and so is an expired one when hideExpired. Expiry is judged by the
// database's time the row was read at.
func (s *Store) decode(r scopedRow, tenant, key string, hideExpired bool) (Entry, error) {
	if r.state == nil || r.createdAt == nil || r.expiresAt == nil || r.omitted == nil {
		return Entry{}, ErrNotFound
	}
	if hideExpired && !r.expiresAt.After(r.now) {
		return Entry{}, ErrNotFound
	}
	e := Entry{TenantID: tenant, Key: key, State: *r.state, CreatedAt: *r.createdAt, ExpiresAt: *r.expiresAt}
	copy(e.Fingerprint[:], r.fingerprint)
	if r.leaseUntil != nil {
		e.LeaseUntil = *r.leaseUntil
	}
	if r.status != nil {
		e.Response = &Response{Status: *r.status, Body: r.body, BodyOmitted: *r.omitted, Header: http.Header{}}
		if err := json.Unmarshal(r.headers, &e.Response.Header); err != nil {
			return Entry{}, fmt.Errorf("idempotency: stored headers: %w", err)
		}
		if e.Response.Body == nil {
			e.Response.Body = []byte{}
		}
	}
	return e, nil
}

// heldSQL wraps a statement on a claim's row (tenant, key $2, token $3) so
// that it runs only in scope (see scopeSQL) and reports the transaction's
// tenant with result, an expression over the statement's RETURNING rows
// ("held").
func heldSQL(statement, result string) string {
	return `
WITH s AS ` + scopeSQL + `,
held AS (` + statement + `)
SELECT s.tenant, ` + result + ` FROM s`
}

// heldWhereSQL selects the claim's row, in scope, for heldSQL.
const heldWhereSQL = scopeMatchSQL + ` AND k.tenant_id = s.tenant::uuid
      AND k.key = $2 AND k.lease_token = $3 AND k.state = 'in_progress'`

var completeSQL = heldSQL(`
    UPDATE platform.idempotency_keys k
    SET state = 'completed', lease_token = NULL, lease_until = NULL, response_status = $4,
        response_headers = $5, response_body = $6, body_omitted = $7, completed_at = now()
    FROM s WHERE `+heldWhereSQL+`
    RETURNING 1`, `(SELECT count(*) FROM held)`)

var releaseSQL = heldSQL(`
    DELETE FROM platform.idempotency_keys k
    USING s WHERE `+heldWhereSQL+`
    RETURNING 1`, `(SELECT count(*) FROM held)`)

// renewSQL extends the lease by $4 from the database's now() and keeps the
// entry's expiry at or after the lease's end, so a holder that outlives the
// TTL never sees its key expire, and be claimed or swept, under it.
var renewSQL = heldSQL(`
    UPDATE platform.idempotency_keys k
    SET lease_until = now() + $4::interval,
        expires_at = greatest(k.expires_at, now() + $4::interval)
    FROM s WHERE `+heldWhereSQL+`
    RETURNING k.lease_until`, `(SELECT lease_until FROM held)`)

// Complete stores resp as the result of the claim identified by token and
// marks the key completed: later claims with the same fingerprint get resp.
// It returns ErrClaimLost when token no longer holds the claim.
func (s *Store) Complete(ctx context.Context, key, token string, resp Response) error {
	return s.complete(ctx, nil, key, token, resp)
}

// CompleteTx is Complete in the caller's transaction tx. tx must already be
// scoped to a tenant; it is never re-scoped, and a context naming another
// tenant is refused with a *tenancy.TenantMismatchError.
func (s *Store) CompleteTx(ctx context.Context, tx pgx.Tx, key, token string, resp Response) error {
	if tx == nil {
		return errNilTx
	}
	return s.complete(ctx, tx, key, token, resp)
}

func (s *Store) complete(ctx context.Context, tx pgx.Tx, key, token string, resp Response) error {
	if err := checkHeld(ctx, tx, key, token); err != nil {
		return err
	}
	if resp.Status < 100 || resp.Status > 999 {
		return fmt.Errorf("idempotency: complete: status %d is not an HTTP status", resp.Status)
	}
	headers, body, err := encodeResponse(resp)
	if err != nil {
		return err
	}
	var n int64
	if err := s.onHeld(ctx, tx, "complete", completeSQL, []any{key, token, resp.Status, headers, body, resp.BodyOmitted}, &n); err != nil {
		return err
	}
	return heldResult(n > 0)
}

// encodeResponse returns a response's headers as JSON and the body to
// store (empty when omitted).
func encodeResponse(resp Response) (headers, body []byte, err error) {
	header := resp.Header
	if header == nil {
		header = http.Header{}
	}
	if headers, err = json.Marshal(header); err != nil {
		return nil, nil, fmt.Errorf("idempotency: complete: %w", err)
	}
	body = resp.Body
	if body == nil || resp.BodyOmitted {
		body = []byte{}
	}
	return headers, body, nil
}

// heldResult is ErrClaimLost when a statement on a claim's row touched
// none.
func heldResult(touched bool) error {
	if !touched {
		return ErrClaimLost
	}
	return nil
}

// onHeld runs a heldSQL statement with args ($2 on) and scans its result
// into dest: in the caller's transaction tx for the …Tx methods, which
// must be scoped to the context's tenant (or the context names none), and
// otherwise in a batch of its own scoped to the context's tenant, one round
// trip.
func (s *Store) onHeld(ctx context.Context, tx pgx.Tx, op, sql string, args []any, dest any) error {
	ctxTenant, _ := tenancy.TenantFrom(ctx)
	args = append([]any{ctxTenant}, args...)
	var txTenant *string
	scan := func(r pgx.Row) error { return r.Scan(&txTenant, dest) }
	var err error
	if tx != nil {
		err = scan(tx.QueryRow(ctx, sql, args...))
	} else {
		if ctxTenant == "" {
			return ErrNoTenant
		}
		err = rls.Batch(ctx, s.db, ctxTenant, func(b *pgx.Batch) { b.Queue(sql, args...).QueryRow(scan) }, nil)
	}
	if err != nil {
		return fmt.Errorf("idempotency: %s: %w", op, err)
	}
	_, err = checkScope(ctxTenant, txTenant)
	return err
}

// Release gives up the claim identified by token: the entry is deleted, so
// the next request with the key runs the operation again. Use it when the
// operation failed without effect. It returns ErrClaimLost when token no
// longer holds the claim.
func (s *Store) Release(ctx context.Context, key, token string) error {
	return s.release(ctx, nil, key, token)
}

// ReleaseTx is Release in the caller's transaction tx. tx must already be
// scoped to a tenant; it is never re-scoped, and a context naming another
// tenant is refused with a *tenancy.TenantMismatchError.
func (s *Store) ReleaseTx(ctx context.Context, tx pgx.Tx, key, token string) error {
	if tx == nil {
		return errNilTx
	}
	return s.release(ctx, tx, key, token)
}

func (s *Store) release(ctx context.Context, tx pgx.Tx, key, token string) error {
	if err := checkHeld(ctx, tx, key, token); err != nil {
		return err
	}
	var n int64
	if err := s.onHeld(ctx, tx, "release", releaseSQL, []any{key, token}, &n); err != nil {
		return err
	}
	return heldResult(n > 0)
}

// Renew extends the lease of the claim identified by token to Lease from
// the database's now and returns the new end of the lease. When the lease
// would outlast the entry's TTL, the entry's expiry moves with it, so a
// holder that runs longer than the TTL keeps its key. The middleware
// renews its claims while the handler runs, so a slow handler keeps its key
// and only a dead holder's claim runs out. It returns ErrClaimLost when
// token no longer holds the claim.
func (s *Store) Renew(ctx context.Context, key, token string) (time.Time, error) {
	return s.renew(ctx, nil, key, token)
}

// RenewTx is Renew in the caller's transaction tx. tx must already be
// scoped to a tenant; it is never re-scoped, and a context naming another
// tenant is refused with a *tenancy.TenantMismatchError.
func (s *Store) RenewTx(ctx context.Context, tx pgx.Tx, key, token string) (time.Time, error) {
	if tx == nil {
		return time.Time{}, errNilTx
	}
	return s.renew(ctx, tx, key, token)
}

func (s *Store) renew(ctx context.Context, tx pgx.Tx, key, token string) (time.Time, error) {
	if err := checkHeld(ctx, tx, key, token); err != nil {
		return time.Time{}, err
	}
	var until *time.Time
	if err := s.onHeld(ctx, tx, "renew", renewSQL, []any{key, token, s.cfg.Lease}, &until); err != nil {
		return time.Time{}, err
	}
	if until == nil {
		return time.Time{}, ErrClaimLost
	}
	return *until, nil
}

// errNilTx is returned by a …Tx method given no transaction.
var errNilTx = errors.New("idempotency: nil transaction")

// checkHeld validates a call on a claim: the tenant comes from the context
// unless a transaction is given (whose scope onHeld checks), then key and
// the claim's token.
func checkHeld(ctx context.Context, tx pgx.Tx, key, token string) error {
	if _, ok := tenancy.TenantFrom(ctx); !ok && tx == nil {
		return ErrNoTenant
	}
	if err := ValidKey(key); err != nil {
		return err
	}
	return checkToken(token)
}

// checkToken refuses a token that is not a UUID: it never held a claim.
func checkToken(token string) error {
	if uuid.Validate(token) != nil {
		return fmt.Errorf("%w: malformed token", ErrClaimLost)
	}
	return nil
}

// tenantOf returns the context's tenant after validating key.
func tenantOf(ctx context.Context, key string) (string, error) {
	tenant, ok := tenancy.TenantFrom(ctx)
	if !ok {
		return "", ErrNoTenant
	}
	return tenant, ValidKey(key)
}
