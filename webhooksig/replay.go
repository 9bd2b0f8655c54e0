package webhooksig

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// DB is the database interface NewReplayStore and NewSweeper take: the
// methods of *pgxpool.Pool they call, so a pool, a wrapped pool or a
// *pgx.Conn will do. It is the same type in every package of the library.
type DB = dbx.DB

// DefaultLease is ReplayStoreConfig.Lease's default.
const DefaultLease = 30 * time.Second

// ReplayStoreConfig configures a ReplayStore. The zero value is usable.
type ReplayStoreConfig struct {
	// Lease is how long a claim in progress is held without being renewed.
	// The middleware renews it every Lease/3 while the handler runs, so a
	// slow handler keeps its claim; the lease only bounds how long the
	// sender's retries are answered 409 after the holder died (a killed
	// process, a lost database connection). Default DefaultLease (30 s).
	// Must be at least a second: Retry-After counts whole seconds.
	Lease time.Duration
}

// ReplayStore remembers deliveries in platform.webhooksig_deliveries, each
// in one of two states:
//
//   - in progress: a handler is processing it, held under a lease by the
//     claim's token. A second claim is told ClaimInProgress (and how long
//     the lease still runs) until the holder completes or releases it, or
//     its lease runs out, after which the next claim takes it over.
//   - completed: the handler finished it; a claim within the TTL is told
//     ClaimCompleted, a replay.
//
// A failed delivery is released (deleted), so the sender's retry is
// processed. Every lease and expiry is computed by the database (now() in
// the statement), so servers whose clocks differ agree on them. A claim is
// one INSERT … ON CONFLICT, so of concurrent claims of one id exactly one
// wins, on any number of servers.
//
// The table is not tenant-scoped and has no row-level security: see the
// package documentation.
type ReplayStore struct {
	db    DB
	lease time.Duration
}

// NewReplayStore returns a store on db (the serving role is enough), or an
// error wrapping ErrInvalidConfig.
func NewReplayStore(db DB, cfg ReplayStoreConfig) (*ReplayStore, error) {
	if db == nil {
		return nil, errs.Config("webhooksig", "replay store: nil database")
	}
	cfg.Lease = cmp.Or(cfg.Lease, DefaultLease)
	if cfg.Lease < time.Second {
		return nil, errs.Config("webhooksig", "replay store: Lease %s is below one second", cfg.Lease)
	}
	return &ReplayStore{db: db, lease: cfg.Lease}, nil
}

var (
	// ErrInvalidDelivery is returned by the store for an empty verifier
	// name or delivery id, a TTL that is not positive, or a token that is
	// not one Claim returned.
	ErrInvalidDelivery = errors.New("webhooksig: empty verifier or delivery id, non-positive ttl, or malformed token")
	// ErrClaimLost is returned by Renew, Complete and Release when the
	// token no longer holds the delivery: its lease ran out and another
	// request took it over, or it was completed, released or swept.
	ErrClaimLost = errors.New("webhooksig: delivery claim no longer held")
)

// ClaimStatus is the outcome of a claim.
type ClaimStatus int

const (
	// ClaimAcquired: this call holds the delivery and should process it.
	ClaimAcquired ClaimStatus = iota + 1
	// ClaimInProgress: another request holds the delivery under a live
	// lease; Claim.RetryAfter says how long that lease still runs.
	ClaimInProgress
	// ClaimCompleted: the delivery was processed within the TTL; this is a
	// replay.
	ClaimCompleted
)

// String returns "acquired", "in_progress" or "completed".
func (s ClaimStatus) String() string {
	switch s {
	case ClaimAcquired:
		return "acquired"
	case ClaimInProgress:
		return "in_progress"
	case ClaimCompleted:
		return "completed"
	default:
		return fmt.Sprintf("ClaimStatus(%d)", int(s))
	}
}

// Claim is the result of ReplayStore.Claim or ClaimTx.
type Claim struct {
	// Status says whether this call holds the delivery.
	Status ClaimStatus
	// Token identifies a claim Claim acquired; pass it to Renew, Complete
	// or Release. Empty otherwise, and for ClaimTx, whose claim needs
	// no completing.
	Token string
	// LeaseUntil is, by the database's clock, when the lease of the holder
	// ends: this call's for a claim Claim acquired, the other holder's for
	// ClaimInProgress. Zero otherwise.
	LeaseUntil time.Time
	// RetryAfter is, for ClaimInProgress, how long the holder's lease
	// still runs (at least one second), computed by the database so the
	// caller need not compare clocks. Zero otherwise.
	RetryAfter time.Duration
}

// maxKeyLen bounds stored ids; a longer id is stored as its SHA-256, so an
// index entry always fits.
const maxKeyLen = 200

// maxClaimAttempts bounds how often a claim is retried when the row it
// conflicted with is not visible to its statement (committed by a
// concurrent transaction after the statement's snapshot, or deleted in
// between). Each retry takes a new snapshot, so one is almost always
// enough.
const maxClaimAttempts = 8

// takeable is when an existing row may be claimed again: it expired, or it
// is in progress under a lease that ran out (its holder died).
const takeable = `(%[1]s.expires_at <= now() OR (%[1]s.state = 'in_progress' AND %[1]s.lease_until <= now()))`

// claimSQL claims (verifier $1, id $2) as in progress under token $3 for
// lease $4, kept for ttl $5 (at least the lease), and returns the outcome
// in one statement: either the row it wrote, or the row it conflicted with
// as the statement's snapshot shows it.
var claimSQL = `
WITH claimed AS (
    INSERT INTO platform.webhooksig_deliveries AS d
        (verifier, delivery_id, state, lease_token, lease_until, received_at, expires_at)
    VALUES ($1, $2, 'in_progress', $3, now() + $4::interval, now(), now() + greatest($5::interval, $4::interval))
    ON CONFLICT (verifier, delivery_id) DO UPDATE
        SET state = 'in_progress', lease_token = EXCLUDED.lease_token, lease_until = EXCLUDED.lease_until,
            received_at = EXCLUDED.received_at, expires_at = EXCLUDED.expires_at, completed_at = NULL
        WHERE ` + fmt.Sprintf(takeable, "d") + `
    RETURNING d.lease_until
)` + outcomeSQL

// claimTxSQL records (verifier $1, id $2) as completed for ttl $3 in the
// caller's transaction: the transaction itself is the lease.
var claimTxSQL = `
WITH claimed AS (
    INSERT INTO platform.webhooksig_deliveries AS d
        (verifier, delivery_id, state, received_at, completed_at, expires_at)
    VALUES ($1, $2, 'completed', now(), now(), now() + $3::interval)
    ON CONFLICT (verifier, delivery_id) DO UPDATE
        SET state = 'completed', lease_token = NULL, lease_until = NULL,
            received_at = EXCLUDED.received_at, completed_at = EXCLUDED.completed_at, expires_at = EXCLUDED.expires_at
        WHERE ` + fmt.Sprintf(takeable, "d") + `
    RETURNING d.lease_until
)` + outcomeSQL

// outcomeSQL follows a "claimed" CTE: one row, ('acquired', lease end) when
// the CTE wrote, else the existing row's state, lease end, seconds left of
// its lease and whether it is takeable, which means the statement's
// snapshot is older than the row the INSERT saw: look again.
var outcomeSQL = `
SELECT 'acquired', lease_until, 0::float8, false FROM claimed
UNION ALL
SELECT e.state, e.lease_until, extract(epoch FROM e.lease_until - now())::float8, ` + fmt.Sprintf(takeable, "e") + `
FROM platform.webhooksig_deliveries e
WHERE e.verifier = $1 AND e.delivery_id = $2 AND NOT EXISTS (SELECT 1 FROM claimed)`

// Claim claims (verifier, id) for processing under a lease, and keeps it
// for ttl (or the lease, if longer). With ClaimAcquired the caller holds it
// and must end the claim with Complete (processed) or Release (failed; a
// retry is processed again), renewing it with Renew if processing may
// outlast the lease. A delivery whose holder's lease ran out, or whose TTL
// passed, is taken over.
func (s *ReplayStore) Claim(ctx context.Context, verifier, id string, ttl time.Duration) (Claim, error) {
	if verifier == "" || id == "" || ttl <= 0 {
		return Claim{}, ErrInvalidDelivery
	}
	token := uuid.NewString()
	c, err := claimLoop(ctx, s.db, claimSQL, verifier, storedKey(id), token, s.lease, ttl)
	if err == nil && c.Status == ClaimAcquired {
		c.Token = token
	}
	return c, err
}

// ClaimTx records (verifier, id) as completed for ttl in the caller's
// transaction tx, so the record commits or rolls back with the handler's
// own writes: a handler that fails and rolls back, or a process that dies
// before the commit, leaves the id free for the sender's retry, and a
// committed delivery is never processed twice. Until tx ends, a concurrent
// claim of the same id waits for it. ClaimAcquired means this transaction
// processes the delivery (no Complete is needed); ClaimCompleted means it
// was processed; ClaimInProgress means a Claim outside a transaction holds
// it under a live lease.
//
// tx is never re-scoped, and a context naming another tenant than the one
// tx is scoped to is refused with a *tenancy.TenantMismatchError (matching
// ErrTenantMismatch). Unlike other …Tx methods, tx need not be scoped to a
// tenant at all: the table holds no tenant data, and a webhook is often
// claimed before its tenant is known.
func (s *ReplayStore) ClaimTx(ctx context.Context, tx pgx.Tx, verifier, id string, ttl time.Duration) (Claim, error) {
	if verifier == "" || id == "" || ttl <= 0 {
		return Claim{}, ErrInvalidDelivery
	}
	if err := checkTxTenant(ctx, tx); err != nil {
		return Claim{}, err
	}
	c, err := claimLoop(ctx, tx, claimTxSQL, verifier, storedKey(id), ttl)
	if c.Status == ClaimAcquired {
		c.LeaseUntil = time.Time{}
	}
	return c, err
}

// checkTxTenant refuses a context naming a tenant other than the one tx is
// scoped to. It reads the transaction's tenant only when the context names
// one, so a webhook handler without a tenant pays no round trip.
func checkTxTenant(ctx context.Context, tx pgx.Tx) error {
	ctxTenant, ok := rls.TenantFrom(ctx)
	if !ok {
		return nil
	}
	txTenant, err := rls.TxTenant(ctx, tx)
	switch {
	case errors.Is(err, errs.ErrNoTenant):
		return nil
	case err != nil:
		return fmt.Errorf("webhooksig: %w", err)
	case txTenant != ctxTenant:
		return &errs.TenantMismatchError{Context: ctxTenant, Transaction: txTenant}
	}
	return nil
}

// querier is what a claim runs on: the store's DB or the caller's pgx.Tx.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func claimLoop(ctx context.Context, q querier, sql string, args ...any) (Claim, error) {
	for range maxClaimAttempts {
		var (
			state      string
			leaseUntil *time.Time
			secondsTo  *float64
			stale      bool
		)
		err := q.QueryRow(ctx, sql, args...).Scan(&state, &leaseUntil, &secondsTo, &stale)
		switch {
		case errors.Is(err, pgx.ErrNoRows) || (err == nil && stale):
			continue // the conflicting row changed after the snapshot: look again
		case err != nil:
			return Claim{}, fmt.Errorf("webhooksig: claim delivery: %w", err)
		}
		c := Claim{}
		switch state {
		case "acquired":
			c.Status = ClaimAcquired
		case "in_progress":
			c.Status = ClaimInProgress
			c.RetryAfter = time.Second
			if secondsTo != nil && *secondsTo > 1 {
				c.RetryAfter = time.Duration(math.Ceil(*secondsTo)) * time.Second
			}
		case "completed":
			c.Status = ClaimCompleted
		default:
			return Claim{}, fmt.Errorf("webhooksig: claim delivery: unknown state %q", state)
		}
		if leaseUntil != nil && c.Status != ClaimCompleted {
			c.LeaseUntil = *leaseUntil
		}
		return c, nil
	}
	return Claim{}, errors.New("webhooksig: claim delivery: the delivery changed on every attempt")
}

// Renew extends the lease of a claim Claim acquired to Lease from now (by
// the database's clock) and returns its new end; the delivery's expiry is
// moved too if the lease would outlast it. The middleware calls it while
// the handler runs. ErrClaimLost means the token no longer holds the
// delivery: stop processing if that can be undone.
func (s *ReplayStore) Renew(ctx context.Context, verifier, id, token string) (time.Time, error) {
	if err := checkHeld(verifier, id, token); err != nil {
		return time.Time{}, err
	}
	var until time.Time
	err := s.db.QueryRow(ctx, `
UPDATE platform.webhooksig_deliveries
SET lease_until = now() + $4::interval, expires_at = greatest(expires_at, now() + $4::interval)
WHERE verifier = $1 AND delivery_id = $2 AND lease_token = $3 AND state = 'in_progress'
RETURNING lease_until`, verifier, storedKey(id), token, s.lease).Scan(&until)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, ErrClaimLost
	case err != nil:
		return time.Time{}, fmt.Errorf("webhooksig: renew delivery claim: %w", err)
	}
	return until, nil
}

// Complete records a claim Claim acquired as processed: from now until
// the TTL given to Claim ends, a claim of the same delivery is a replay
// (ClaimCompleted). It succeeds after the lease ran out as long as nobody
// took the delivery over; ErrClaimLost means someone did.
func (s *ReplayStore) Complete(ctx context.Context, verifier, id, token string) error {
	return s.endClaim(ctx, "complete", `
UPDATE platform.webhooksig_deliveries
SET state = 'completed', lease_token = NULL, lease_until = NULL, completed_at = now()
WHERE verifier = $1 AND delivery_id = $2 AND lease_token = $3 AND state = 'in_progress'`, verifier, id, token)
}

// Release gives up a claim Claim acquired, because processing failed: the
// delivery is forgotten, so the sender's retry is processed. ErrClaimLost
// means the token no longer held it.
func (s *ReplayStore) Release(ctx context.Context, verifier, id, token string) error {
	return s.endClaim(ctx, "release", `
DELETE FROM platform.webhooksig_deliveries
WHERE verifier = $1 AND delivery_id = $2 AND lease_token = $3 AND state = 'in_progress'`, verifier, id, token)
}

func (s *ReplayStore) endClaim(ctx context.Context, op, sql, verifier, id, token string) error {
	if err := checkHeld(verifier, id, token); err != nil {
		return err
	}
	tag, err := s.db.Exec(ctx, sql, verifier, storedKey(id), token)
	if err != nil {
		return fmt.Errorf("webhooksig: %s delivery claim: %w", op, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrClaimLost
	}
	return nil
}

func checkHeld(verifier, id, token string) error {
	if verifier == "" || id == "" {
		return ErrInvalidDelivery
	}
	if _, err := uuid.Parse(token); err != nil {
		return ErrInvalidDelivery
	}
	return nil
}

// storedKey is id as stored: itself, or its digest when it is too long for
// an index entry or is not text PostgreSQL accepts (invalid UTF-8, NUL).
func storedKey(id string) string {
	if len(id) <= maxKeyLen && pgtext.CheckText(id) == nil {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}
