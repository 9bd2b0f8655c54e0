package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

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

// queueTenant queues, as the first query of b, the set_config that scopes
// the rest of b's transaction to tenant, a canonical UUID. A batch sent
// without BEGIN runs as one implicit transaction, so the setting ends with
// it, as with tenancy.InTx.
func queueTenant(b *pgx.Batch, tenant string) {
	b.Queue("SELECT set_config('"+rls.Setting+"', $1, true)", tenant)
}

// StoreConfig configures a Store. The zero value is usable: every field
// documents its default.
type StoreConfig struct {
	// TTL is how long an entry is kept after it is claimed; once it has
	// passed, the key is free again and the sweeper deletes the entry.
	// Default: DefaultTTL (24 hours). Must not be negative.
	TTL time.Duration
	// Lease is how long a claim is held. A claim not completed or released
	// within it (its holder died) can be claimed again by a request with the
	// same fingerprint. Set it above the slowest operation's duration: a
	// holder whose lease ran out gets ErrClaimLost from Complete. Default:
	// DefaultLease (1 minute). Must not be negative nor exceed TTL.
	Lease time.Duration
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *StoreConfig) setDefaults() error {
	if c.TTL < 0 || c.Lease < 0 {
		return invalidConfig("TTL and Lease must not be negative")
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Lease > c.TTL {
		return invalidConfig("Lease %s exceeds TTL %s", c.Lease, c.TTL)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Store keeps idempotency keys in platform.idempotency_keys. It is safe for
// concurrent use. Every method reads the tenant from the context
// (tenancy.WithTenant) and returns ErrNoTenant without one. The methods
// without the Tx suffix run in their own tenant-scoped transaction of the
// store's pool, sent as one pipelined batch: one round trip each. The …Tx
// variants run in the caller's transaction, which must already be scoped
// to the same tenant (tenancy.InTx or tenancy.InTenantTx), so the key commits or
// rolls back with the caller's writes.
type Store struct {
	db  *pgxpool.Pool
	cfg StoreConfig
}

// NewStore returns a Store on db, normally a pool of the application role
// (row-level security binds it).
func NewStore(db *pgxpool.Pool, cfg StoreConfig) (*Store, error) {
	if db == nil {
		return nil, invalidConfig("nil database")
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
	// Token identifies the claim; pass it to Complete or Release. Empty when
	// Completed is set.
	Token string
	// LeaseUntil is when the claim expires if neither completed nor
	// released.
	LeaseUntil time.Time
	// Completed is the stored response of an earlier request with this key
	// and fingerprint: return it and do not run the operation again.
	Completed *Response
}

// Entry is a stored key as Lookup returns it.
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
	now := s.cfg.Now()
	token, lease := uuid.NewString(), now.Add(s.cfg.Lease)
	var (
		granted bool
		row     entryRow
		found   bool
		b       pgx.Batch
	)
	queueTenant(&b, tenant)
	b.Queue(claimIfFreeSQL, tenant, key, fp[:], token, lease, now, now.Add(s.cfg.TTL)).QueryRow(func(r pgx.Row) error {
		var got string
		granted, err = scanOptional(r, &got)
		return err
	})
	b.Queue(lookupSQL, tenant, key).QueryRow(func(r pgx.Row) error {
		found, err = scanOptional(r, row.dest()...)
		return err
	})
	if err := s.db.SendBatch(ctx, &b).Close(); err != nil {
		return Claim{}, false, fmt.Errorf("idempotency: claim: %w", err)
	}
	if granted {
		return Claim{Token: token, LeaseUntil: lease}, false, nil
	}
	if !found {
		return Claim{}, true, nil
	}
	entry, err := s.decode(row, tenant, key, false)
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

// ClaimTx is Claim in the caller's transaction tx, which must be scoped to
// the context's tenant. The claim is invisible to other transactions until
// tx commits; so that a concurrent ClaimTx with the same key gets
// ErrInProgress at once instead of waiting for tx to finish, ClaimTx first
// takes a transaction-level advisory lock on (tenant, key); when another
// transaction holds it, ClaimTx answers from the committed entry (a replay,
// a mismatch) or with ErrInProgress, without waiting.
func (s *Store) ClaimTx(ctx context.Context, tx pgx.Tx, key string, fp Fingerprint) (Claim, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return Claim{}, err
	}
	locked, entry, err := s.lockAndLookup(ctx, tx, tenant, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Claim{}, err
	}
	found := err == nil
	if found && !s.takeable(entry, fp) {
		return existingClaim(entry, fp) // a replay, a mismatch or a live claim
	}
	if !locked {
		// Another transaction is claiming the key and has not committed.
		leaseUntil := s.cfg.Now().Add(s.cfg.Lease)
		if found {
			leaseUntil = entry.LeaseUntil
		}
		return Claim{}, &InProgressError{LeaseUntil: leaseUntil}
	}
	return s.claim(ctx, tx, tenant, key, fp)
}

// takeOverSQL ends the claim statements: an entry that conflicts is taken
// over only when it expired, or is a dead holder's claim on the same
// request whose lease ran out.
const takeOverSQL = `
ON CONFLICT (tenant_id, key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint, state = 'in_progress',
    lease_token = EXCLUDED.lease_token, lease_until = EXCLUDED.lease_until,
    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
    response_status = NULL, response_headers = NULL, response_body = NULL,
    body_omitted = false, completed_at = NULL
WHERE k.expires_at <= EXCLUDED.created_at
   OR (k.state = 'in_progress' AND k.lease_until <= EXCLUDED.created_at
       AND k.fingerprint = EXCLUDED.fingerprint)
RETURNING k.lease_token`

const claimSQL = `
INSERT INTO platform.idempotency_keys AS k
    (tenant_id, key, fingerprint, state, lease_token, lease_until, created_at, expires_at)
VALUES ($1, $2, $3, 'in_progress', $4, $5, $6, $7)` + takeOverSQL

// claimIfFreeSQL is claimSQL guarded so that it writes nothing when an
// entry decides the claim (a replay, a mismatch, a live claim): retries of
// completed requests, the common case, thus take no row lock and commit
// nothing to disk. A racing insert still meets ON CONFLICT.
const claimIfFreeSQL = `
INSERT INTO platform.idempotency_keys AS k
    (tenant_id, key, fingerprint, state, lease_token, lease_until, created_at, expires_at)
SELECT $1::uuid, $2::text, $3::bytea, 'in_progress', $4::uuid, $5::timestamptz, $6::timestamptz, $7::timestamptz
WHERE NOT EXISTS (
    SELECT 1 FROM platform.idempotency_keys e
    WHERE e.tenant_id = $1::uuid AND e.key = $2::text AND e.expires_at > $6::timestamptz
      AND NOT (e.state = 'in_progress' AND e.lease_until <= $6::timestamptz AND e.fingerprint = $3::bytea))` +
	takeOverSQL

// claimAttempts bounds the retries when the conflicting entry disappears
// (released or swept) between the claim and the read of that entry.
const claimAttempts = 3

// takeable reports whether an unexpired entry may be claimed by the
// request fp: only a dead holder's claim on the same request, whose lease
// ran out.
func (s *Store) takeable(e Entry, fp Fingerprint) bool {
	return e.State == StateInProgress && e.Fingerprint == fp && !e.LeaseUntil.After(s.cfg.Now())
}

func (s *Store) claim(ctx context.Context, tx pgx.Tx, tenant, key string, fp Fingerprint) (Claim, error) {
	for range claimAttempts {
		now := s.cfg.Now()
		token := uuid.NewString()
		lease := now.Add(s.cfg.Lease)
		var got string
		err := tx.QueryRow(ctx, claimSQL, tenant, key, fp[:], token, lease, now, now.Add(s.cfg.TTL)).Scan(&got)
		if err == nil {
			return Claim{Token: got, LeaseUntil: lease}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Claim{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		entry, err := s.lookup(ctx, tx, tenant, key, false)
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
	var (
		row   entryRow
		found bool
		b     pgx.Batch
	)
	queueTenant(&b, tenant)
	b.Queue(lookupSQL, tenant, key).QueryRow(func(r pgx.Row) error {
		found, err = scanOptional(r, row.dest()...)
		return err
	})
	if err := s.db.SendBatch(ctx, &b).Close(); err != nil {
		return Entry{}, fmt.Errorf("idempotency: look up: %w", err)
	}
	if !found {
		return Entry{}, ErrNotFound
	}
	return s.decode(row, tenant, key, true)
}

// LookupTx is Lookup in the caller's tenant-scoped transaction tx.
func (s *Store) LookupTx(ctx context.Context, tx pgx.Tx, key string) (Entry, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	return s.lookup(ctx, tx, tenant, key, true)
}

const lookupSQL = `
SELECT fingerprint, state, lease_until, response_status, response_headers, response_body,
       body_omitted, created_at, expires_at
FROM platform.idempotency_keys WHERE tenant_id = $1 AND key = $2`

func (s *Store) lookup(ctx context.Context, tx pgx.Tx, tenant, key string, hideExpired bool) (Entry, error) {
	var row entryRow
	err := tx.QueryRow(ctx, lookupSQL, tenant, key).Scan(row.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("idempotency: look up: %w", err)
	}
	return s.decode(row, tenant, key, hideExpired)
}

// tryKeyLockSQL tries the transaction-level advisory lock on a key, named
// by $1 (lockName). ClaimTx and transactional mode take the same lock, so
// they exclude each other.
const tryKeyLockSQL = `pg_try_advisory_xact_lock(hashtextextended($1, 0))`

// lockName is the advisory lock's name for key in tenant.
func lockName(tenant, key string) string { return tenant + "/" + key }

// lockAndLookupSQL takes ClaimTx's advisory lock and reads the entry of
// tenant $2 and key $3 in one round trip; the entry's columns are NULL when
// there is none.
const lockAndLookupSQL = `
SELECT ` + tryKeyLockSQL + `,
       k.fingerprint, k.state, k.lease_until, k.response_status, k.response_headers, k.response_body,
       k.body_omitted, k.created_at, k.expires_at
FROM (SELECT 1) AS one
LEFT JOIN platform.idempotency_keys k ON k.tenant_id = $2 AND k.key = $3`

// lockAndLookup returns whether the advisory lock on (tenant, key) was
// taken, and the unexpired entry or ErrNotFound.
func (s *Store) lockAndLookup(ctx context.Context, tx pgx.Tx, tenant, key string) (bool, Entry, error) {
	var (
		locked bool
		row    entryRow
	)
	dest := append([]any{&locked}, row.dest()...)
	if err := tx.QueryRow(ctx, lockAndLookupSQL, lockName(tenant, key), tenant, key).Scan(dest...); err != nil {
		return false, Entry{}, fmt.Errorf("idempotency: lock key: %w", err)
	}
	if row.fingerprint == nil {
		return locked, Entry{}, ErrNotFound
	}
	entry, err := s.decode(row, tenant, key, true)
	return locked, entry, err
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

// decode turns a scanned row into an Entry; an expired one is ErrNotFound
// when hideExpired.
func (s *Store) decode(r entryRow, tenant, key string, hideExpired bool) (Entry, error) {
	if r.state == nil || r.createdAt == nil || r.expiresAt == nil || r.omitted == nil {
		return Entry{}, ErrNotFound
	}
	if hideExpired && !r.expiresAt.After(s.cfg.Now()) {
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

// Complete stores resp as the result of the claim identified by token and
// marks the key completed: later claims with the same fingerprint get resp.
// It returns ErrClaimLost when token no longer holds the claim.
func (s *Store) Complete(ctx context.Context, key, token string, resp Response) error {
	return s.complete(ctx, s.inOwnBatch, key, token, resp)
}

// CompleteTx is Complete in the caller's tenant-scoped transaction tx.
func (s *Store) CompleteTx(ctx context.Context, tx pgx.Tx, key, token string, resp Response) error {
	return s.complete(ctx, inTx(tx), key, token, resp)
}

func (s *Store) complete(ctx context.Context, exec heldExec, key, token string, resp Response) error {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return err
	}
	args, err := s.completeArgs(tenant, key, token, resp)
	if err != nil {
		return err
	}
	tag, err := exec(ctx, tenant, completeSQL, args...)
	return heldResult("complete", tag, err)
}

const completeSQL = `
UPDATE platform.idempotency_keys
SET state = 'completed', lease_token = NULL, lease_until = NULL, response_status = $4,
    response_headers = $5, response_body = $6, body_omitted = $7, completed_at = $8
WHERE tenant_id = $1 AND key = $2 AND lease_token = $3 AND state = 'in_progress'`

// completeArgs validates a completion and returns completeSQL's arguments.
func (s *Store) completeArgs(tenant, key, token string, resp Response) ([]any, error) {
	if resp.Status < 100 || resp.Status > 999 {
		return nil, fmt.Errorf("idempotency: complete: status %d is not an HTTP status", resp.Status)
	}
	if err := checkToken(token); err != nil {
		return nil, err
	}
	headers, body, err := encodeResponse(resp)
	if err != nil {
		return nil, err
	}
	return []any{tenant, key, token, resp.Status, headers, body, resp.BodyOmitted, s.cfg.Now()}, nil
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

// heldResult turns the outcome of a statement that must touch the claim's
// row into ErrClaimLost when it touched none.
func heldResult(op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		return fmt.Errorf("idempotency: %s: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrClaimLost
	}
	return nil
}

// heldExec runs a statement on a claim's row for tenant: in the caller's
// transaction for the …Tx methods (inTx), in a batch of its own for the
// others (Store.inOwnBatch).
type heldExec func(ctx context.Context, tenant, sql string, args ...any) (pgconn.CommandTag, error)

// inTx runs statements in tx, which the caller has scoped to the tenant.
func inTx(tx pgx.Tx) heldExec {
	return func(ctx context.Context, _, sql string, args ...any) (pgconn.CommandTag, error) {
		return tx.Exec(ctx, sql, args...)
	}
}

// inOwnBatch runs sql in a tenant-scoped batch of its own: one round trip.
func (s *Store) inOwnBatch(ctx context.Context, tenant, sql string, args ...any) (pgconn.CommandTag, error) {
	var (
		b   pgx.Batch
		tag pgconn.CommandTag
	)
	queueTenant(&b, tenant)
	b.Queue(sql, args...).Exec(func(t pgconn.CommandTag) error {
		tag = t
		return nil
	})
	return tag, s.db.SendBatch(ctx, &b).Close()
}

// Release gives up the claim identified by token: the entry is deleted, so
// the next request with the key runs the operation again. Use it when the
// operation failed without effect. It returns ErrClaimLost when token no
// longer holds the claim.
func (s *Store) Release(ctx context.Context, key, token string) error {
	return release(ctx, s.inOwnBatch, key, token)
}

// ReleaseTx is Release in the caller's tenant-scoped transaction tx.
func (s *Store) ReleaseTx(ctx context.Context, tx pgx.Tx, key, token string) error {
	return release(ctx, inTx(tx), key, token)
}

func release(ctx context.Context, exec heldExec, key, token string) error {
	tenant, err := heldBy(ctx, key, token)
	if err != nil {
		return err
	}
	tag, err := exec(ctx, tenant, releaseSQL, tenant, key, token)
	return heldResult("release", tag, err)
}

const releaseSQL = `
DELETE FROM platform.idempotency_keys
WHERE tenant_id = $1 AND key = $2 AND lease_token = $3 AND state = 'in_progress'`

// Renew extends the lease of the claim identified by token to Lease from
// now and returns the new end of the lease. The middleware renews its
// claims while the handler runs, so a slow handler keeps its key and only
// a dead holder's claim runs out. It returns ErrClaimLost when token no
// longer holds the claim.
func (s *Store) Renew(ctx context.Context, key, token string) (time.Time, error) {
	return s.renew(ctx, s.inOwnBatch, key, token)
}

// RenewTx is Renew in the caller's tenant-scoped transaction tx.
func (s *Store) RenewTx(ctx context.Context, tx pgx.Tx, key, token string) (time.Time, error) {
	return s.renew(ctx, inTx(tx), key, token)
}

func (s *Store) renew(ctx context.Context, exec heldExec, key, token string) (time.Time, error) {
	tenant, err := heldBy(ctx, key, token)
	if err != nil {
		return time.Time{}, err
	}
	until := s.cfg.Now().Add(s.cfg.Lease)
	tag, err := exec(ctx, tenant, renewSQL, tenant, key, token, until)
	return until, heldResult("renew", tag, err)
}

const renewSQL = `
UPDATE platform.idempotency_keys SET lease_until = $4
WHERE tenant_id = $1 AND key = $2 AND lease_token = $3 AND state = 'in_progress'`

// heldBy returns the context's tenant after validating key and the token
// of a claim on it.
func heldBy(ctx context.Context, key, token string) (string, error) {
	tenant, err := tenantOf(ctx, key)
	if err != nil {
		return "", err
	}
	return tenant, checkToken(token)
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
