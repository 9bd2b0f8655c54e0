package webhooksig

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the store's ...Tx methods need: satisfied by pgx.Tx,
// *pgx.Conn and *pgxpool.Pool.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReplayStoreConfig configures a ReplayStore.
type ReplayStoreConfig struct {
	// Now returns the current time; it stamps received_at and expires_at,
	// so expiry follows the same clock as the verifiers. Default time.Now.
	Now func() time.Time
}

// ReplayStore remembers delivery ids in platform.webhooksig_deliveries for a
// TTL. A claim is one INSERT … ON CONFLICT, so of two concurrent claims of
// one id exactly one wins, on any number of servers.
type ReplayStore struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewReplayStore returns a store on pool (the serving role is enough; the
// table has no row-level security), or an error wrapping ErrInvalidConfig.
func NewReplayStore(pool *pgxpool.Pool, cfg ReplayStoreConfig) (*ReplayStore, error) {
	if pool == nil {
		return nil, errors.Join(ErrInvalidConfig, errors.New("replay store: nil pool"))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ReplayStore{pool: pool, now: cfg.Now}, nil
}

// ErrInvalidDelivery is returned by the store for an empty verifier name or
// delivery id, or a TTL that is not positive.
var ErrInvalidDelivery = errors.New("webhooksig: empty verifier or delivery id, or non-positive ttl")

// maxKeyLen bounds stored ids; a longer id is stored as its SHA-256, so an
// index entry always fits.
const maxKeyLen = 200

const claimSQL = `
INSERT INTO platform.webhooksig_deliveries AS d (verifier, delivery_id, received_at, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (verifier, delivery_id) DO UPDATE
    SET received_at = EXCLUDED.received_at, expires_at = EXCLUDED.expires_at
    WHERE d.expires_at <= EXCLUDED.received_at
RETURNING true`

// Claim records (verifier, id) for ttl and reports whether this call was the
// first to do so; false means the id was already claimed and has not
// expired. An expired claim is taken over.
func (s *ReplayStore) Claim(ctx context.Context, verifier, id string, ttl time.Duration) (bool, error) {
	return s.ClaimTx(ctx, s.pool, verifier, id, ttl)
}

// ClaimTx is Claim inside the caller's transaction, so the claim commits or
// rolls back with the caller's own writes: a handler that fails and rolls
// back leaves the id free for the sender's retry. Until that transaction
// ends, a concurrent claim of the same id waits for it.
func (s *ReplayStore) ClaimTx(ctx context.Context, tx DBTX, verifier, id string, ttl time.Duration) (bool, error) {
	if verifier == "" || id == "" || ttl <= 0 {
		return false, ErrInvalidDelivery
	}
	now := s.now()
	var first bool
	err := tx.QueryRow(ctx, claimSQL, verifier, storedKey(id), now, now.Add(ttl)).Scan(&first)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("webhooksig: claim delivery: %w", err)
	}
	return first, nil
}

// Release forgets (verifier, id), so a retry of a delivery whose processing
// failed is accepted again. Releasing an unknown id is not an error.
func (s *ReplayStore) Release(ctx context.Context, verifier, id string) error {
	return s.ReleaseTx(ctx, s.pool, verifier, id)
}

// ReleaseTx is Release inside the caller's transaction.
func (s *ReplayStore) ReleaseTx(ctx context.Context, tx DBTX, verifier, id string) error {
	if verifier == "" || id == "" {
		return ErrInvalidDelivery
	}
	_, err := tx.Exec(ctx, `DELETE FROM platform.webhooksig_deliveries WHERE verifier = $1 AND delivery_id = $2`,
		verifier, storedKey(id))
	if err != nil {
		return fmt.Errorf("webhooksig: release delivery: %w", err)
	}
	return nil
}

// Sweep deletes expired claims and returns how many. Expired claims are
// harmless (Claim takes them over); Sweep only keeps the table small. Run
// it periodically, for example hourly.
func (s *ReplayStore) Sweep(ctx context.Context) (int64, error) {
	return s.SweepTx(ctx, s.pool)
}

// SweepTx is Sweep inside the caller's transaction.
func (s *ReplayStore) SweepTx(ctx context.Context, tx DBTX) (int64, error) {
	tag, err := tx.Exec(ctx, `DELETE FROM platform.webhooksig_deliveries WHERE expires_at <= $1`, s.now())
	if err != nil {
		return 0, fmt.Errorf("webhooksig: sweep deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}

// storedKey is id as stored: itself, or its digest when it is too long for
// an index entry or is not text PostgreSQL accepts (invalid UTF-8, NUL).
func storedKey(id string) string {
	if len(id) <= maxKeyLen && utf8.ValidString(id) && !strings.ContainsRune(id, 0) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}
