package tenancy

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// Sizes and defaults of API keys.
const (
	// APIKeySecretBytes is the number of random bytes in a key's secret.
	APIKeySecretBytes = 32
	// DefaultAPIKeyBrand starts every key, so leaked keys are easy to
	// recognise (by secret scanners, for example).
	DefaultAPIKeyBrand = "dlx"
	// DefaultLastUsedInterval is how stale last_used_at may get before an
	// authentication writes it again.
	DefaultLastUsedInterval = time.Minute
	// MaxAPIKeyNameLength is the longest key name, in characters.
	MaxAPIKeyNameLength = 200
	// MaxAPIKeyScopes is the most scopes a key may carry.
	MaxAPIKeyScopes = 64
)

const (
	prefixRandomBytes = 8
	idPartLength      = 39 // base32 of 16 tenant bytes + 8 random bytes
	secretPartLength  = 52 // base32 of APIKeySecretBytes
)

var (
	// ErrAPIKeyNotFound is returned by Revoke for an id that names no key
	// of the context's tenant.
	ErrAPIKeyNotFound = errors.New("tenancy: API key not found")
	// ErrInvalidAPIKeySpec is returned by Create for an empty or overlong
	// name or a bad scope.
	ErrInvalidAPIKeySpec = errors.New("tenancy: invalid API key name or scopes")
)

// keyEncoding is lower-case base32 without padding: case-stable, no
// characters that need escaping, and no "_" so the parts split cleanly.
var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var (
	brandPattern = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	scopePattern = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)
)

// APIKeysConfig configures an APIKeys service. The zero value is valid.
type APIKeysConfig struct {
	// Brand starts every issued key ("<brand>_..."). Lower-case letters and
	// digits, starting with a letter, at most 16. Default:
	// DefaultAPIKeyBrand ("dlx").
	Brand string
	// LastUsedInterval limits how often an authentication writes the key's
	// last_used_at: only when the stored value is older than this. Default:
	// DefaultLastUsedInterval (one minute).
	LastUsedInterval time.Duration
	// CacheTTL, when positive, keeps each verified key in memory for this
	// long: within it, Authenticate answers from the cache (one SHA-256 of
	// the key and a map lookup) without a transaction. A key revoked
	// through this APIKeys value is dropped from its cache at once (with
	// RevokeTx, when RevokeTx is called, before the caller commits); other
	// instances, and a key revoked in SQL, keep accepting it until their
	// entry expires, so CacheTTL bounds how long a revocation takes to
	// reach every instance. Answers from the cache do not write
	// last_used_at; the next database check does. Principals answered
	// from the cache share their Scopes slice: treat it as read-only.
	// Default 0: no cache, every authentication reads the key's row.
	CacheTTL time.Duration
	// CacheSize bounds the keys kept with a CacheTTL; when it is reached,
	// expired entries are dropped and, if none was, new keys are not
	// cached. Default: DefaultAPIKeyCacheSize (10,000).
	CacheSize int
	// Now is the clock, for last_used_at and the cache's expiry. Default:
	// time.Now.
	Now func() time.Time
	// Logger receives failures. Default: slog.Default().
	Logger *slog.Logger
}

// APIKeys issues, lists, revokes and authenticates API keys stored in
// platform.tenancy_api_keys. Use it on the app role: every statement runs
// in a transaction scoped to one tenant. It is safe for concurrent use.
type APIKeys struct {
	db    DB
	cfg   APIKeysConfig
	cache *keyCache // nil without a CacheTTL
}

// NewAPIKeys validates cfg and returns the service on db (usually the app
// role's *pgxpool.Pool).
func NewAPIKeys(db DB, cfg APIKeysConfig) (*APIKeys, error) {
	if db == nil {
		return nil, errs.Config("tenancy", "APIKeys needs a database")
	}
	cfg.Brand = cmp.Or(cfg.Brand, DefaultAPIKeyBrand)
	if !brandPattern.MatchString(cfg.Brand) {
		return nil, errs.Config("tenancy", "APIKeysConfig.Brand %q must match %s", cfg.Brand, brandPattern)
	}
	if cfg.LastUsedInterval < 0 {
		return nil, errs.Config("tenancy", "APIKeysConfig.LastUsedInterval is negative")
	}
	if cfg.LastUsedInterval == 0 {
		cfg.LastUsedInterval = DefaultLastUsedInterval
	}
	if cfg.CacheTTL < 0 || cfg.CacheSize < 0 {
		return nil, errs.Config("tenancy", "APIKeysConfig.CacheTTL and CacheSize must not be negative")
	}
	cfg.CacheSize = cmp.Or(cfg.CacheSize, DefaultAPIKeyCacheSize)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &APIKeys{db: db, cfg: cfg}
	if cfg.CacheTTL > 0 {
		s.cache = newKeyCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now)
	}
	return s, nil
}

// NewAPIKey describes a key to create.
type NewAPIKey struct {
	// Name tells people what the key is for. Required; at most
	// MaxAPIKeyNameLength characters.
	Name string
	// Scopes are granted to the key's principal. Each is 1 to 128 printable
	// ASCII characters without spaces; at most MaxAPIKeyScopes.
	Scopes []string
}

// APIKey is a stored key. It never holds the key itself.
type APIKey struct {
	ID         string
	TenantID   string
	Prefix     string // the visible, non-secret start of the key
	Name       string
	Scopes     []string
	CreatedAt  time.Time
	LastUsedAt *time.Time // nil until first used
	RevokedAt  *time.Time // nil while active
}

// IssuedAPIKey is a newly created key together with its plain value.
type IssuedAPIKey struct {
	APIKey
	// Key is the secret to hand to the client. It is shown only here: the
	// database keeps its SHA-256 hash.
	Key string
}

// Create issues a key for the tenant in ctx, in its own transaction.
func (s *APIKeys) Create(ctx context.Context, spec NewAPIKey) (IssuedAPIKey, error) {
	if err := spec.validate(); err != nil { // before opening a transaction
		return IssuedAPIKey{}, err
	}
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return IssuedAPIKey{}, ErrNoTenant
	}
	var issued IssuedAPIKey
	err := InTxForTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
		var err error
		issued, err = s.createTx(ctx, tx, tenant, spec)
		return err
	})
	if err != nil {
		return IssuedAPIKey{}, err
	}
	return issued, nil
}

// CreateTx issues a key for the tenant of the caller's transaction tx,
// inside it: the key exists only if tx commits. tx must already be scoped
// to a tenant (ErrNoTenant otherwise); it is never re-scoped, and a context
// naming another tenant is refused with a *tenancy.TenantMismatchError.
func (s *APIKeys) CreateTx(ctx context.Context, tx pgx.Tx, spec NewAPIKey) (IssuedAPIKey, error) {
	if err := spec.validate(); err != nil {
		return IssuedAPIKey{}, err
	}
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return IssuedAPIKey{}, err
	}
	return s.createTx(ctx, tx, tenant, spec)
}

// createTx inserts a key for tenant, the tenant tx is scoped to.
func (s *APIKeys) createTx(ctx context.Context, tx pgx.Tx, tenant string, spec NewAPIKey) (IssuedAPIKey, error) {
	key, prefix, err := s.generate(tenant)
	if err != nil {
		return IssuedAPIKey{}, err
	}
	issued := IssuedAPIKey{Key: key, APIKey: APIKey{
		ID: uuid.NewString(), TenantID: tenant, Prefix: prefix, Name: spec.Name,
		Scopes: append([]string{}, spec.Scopes...), CreatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond),
	}}
	hash := sha256.Sum256([]byte(key))
	_, err = tx.Exec(ctx, `INSERT INTO platform.tenancy_api_keys
		(tenant_id, id, prefix, key_hash, name, scopes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tenant, issued.ID, prefix, hash[:], spec.Name, issued.Scopes, issued.CreatedAt)
	if err != nil {
		return IssuedAPIKey{}, fmt.Errorf("tenancy: create API key: %w", err)
	}
	return issued, nil
}

func (spec NewAPIKey) validate() error {
	if n := utf8.RuneCountInString(spec.Name); n == 0 || n > MaxAPIKeyNameLength || !utf8.ValidString(spec.Name) {
		return fmt.Errorf("%w: the name must have 1 to %d characters", ErrInvalidAPIKeySpec, MaxAPIKeyNameLength)
	}
	if len(spec.Scopes) > MaxAPIKeyScopes {
		return fmt.Errorf("%w: more than %d scopes", ErrInvalidAPIKeySpec, MaxAPIKeyScopes)
	}
	for _, scope := range spec.Scopes {
		if !scopePattern.MatchString(scope) {
			return fmt.Errorf("%w: scope %q", ErrInvalidAPIKeySpec, pgtext.Clean(scope, 64))
		}
	}
	return nil
}

// generate makes a key "<brand>_<id>_<secret>": id encodes the tenant and 8
// random bytes, secret 32 random bytes. The prefix "<brand>_<id>" is stored
// in clear to find the key; the whole key is hashed.
func (s *APIKeys) generate(tenant string) (key, prefix string, err error) {
	var idBytes [16 + prefixRandomBytes]byte
	tenantUUID, err := uuid.Parse(tenant)
	if err != nil {
		return "", "", fmt.Errorf("tenancy: the transaction's tenant %q: %w", pgtext.Clean(tenant, 64), ErrInvalidTenant)
	}
	copy(idBytes[:16], tenantUUID[:])
	var secret [APIKeySecretBytes]byte
	if _, err := rand.Read(idBytes[16:]); err != nil {
		return "", "", fmt.Errorf("tenancy: random key id: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", fmt.Errorf("tenancy: random key secret: %w", err)
	}
	prefix = s.cfg.Brand + "_" + keyEncoding.EncodeToString(idBytes[:])
	return prefix + "_" + keyEncoding.EncodeToString(secret[:]), prefix, nil
}

// ParseAPIKey splits a key of the form "<brand>_<id>_<secret>" issued by
// APIKeys and returns the tenant it was issued for and its prefix
// ("<brand>_<id>"). It checks only the form; Authenticate checks the
// secret. Anything malformed is refused with ErrInvalidAPIKey.
func ParseAPIKey(key string) (tenantID, prefix string, err error) {
	brand, rest, ok := strings.Cut(key, "_")
	if !ok || !brandPattern.MatchString(brand) || len(rest) != idPartLength+1+secretPartLength {
		return "", "", ErrInvalidAPIKey
	}
	id, secret := rest[:idPartLength], rest[idPartLength+1:]
	if rest[idPartLength] != '_' || !isKeyText(secret) {
		return "", "", ErrInvalidAPIKey
	}
	idBytes, err := keyEncoding.DecodeString(id)
	// Re-encoding rejects the non-canonical spellings base32 would accept.
	if err != nil || len(idBytes) != 16+prefixRandomBytes || keyEncoding.EncodeToString(idBytes) != id {
		return "", "", ErrInvalidAPIKey
	}
	tenant, err := uuid.FromBytes(idBytes[:16])
	if err != nil {
		return "", "", ErrInvalidAPIKey
	}
	return tenant.String(), brand + "_" + id, nil
}

func isKeyText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// Authenticate checks key and returns its principal: the Subject is the
// key's id, the KeyID its prefix, the Scopes its scopes. A malformed,
// unknown or revoked key, or one of another brand, is ErrInvalidAPIKey; a
// database failure is ErrAuthUnavailable.
//
// The key names its tenant, so the lookup runs as the app role in a
// transaction scoped to that tenant, under row-level security like every
// other query: see the package documentation.
//
// With a CacheTTL, a key verified within the TTL is answered from memory.
func (s *APIKeys) Authenticate(ctx context.Context, key string) (Principal, error) {
	var sum [sha256.Size]byte
	if s.cache != nil {
		sum = sha256.Sum256([]byte(key))
		if p, ok := s.cache.get(&sum); ok {
			return p, nil
		}
	}
	tenant, prefix, err := ParseAPIKey(key)
	if err != nil || !strings.HasPrefix(prefix, s.cfg.Brand+"_") {
		return Principal{}, ErrInvalidAPIKey
	}
	var p Principal
	err = InTxForTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
		p, err = s.authenticateTx(ctx, tx, tenant, prefix, key)
		return err
	})
	switch {
	case err == nil:
		if s.cache != nil {
			s.cache.put(&sum, p)
		}
		return p, nil
	case errors.Is(err, ErrInvalidAPIKey):
		return Principal{}, err
	default:
		return Principal{}, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
	}
}

func (s *APIKeys) authenticateTx(ctx context.Context, tx pgx.Tx, tenant, prefix, key string) (Principal, error) {
	var (
		id       string
		hash     []byte
		scopes   []string
		lastUsed *time.Time
		revoked  bool
	)
	err := tx.QueryRow(ctx, `SELECT id::text, key_hash, scopes, last_used_at, revoked_at IS NOT NULL
		FROM platform.tenancy_api_keys WHERE tenant_id = $1 AND prefix = $2`, tenant, prefix).
		Scan(&id, &hash, &scopes, &lastUsed, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrInvalidAPIKey
	}
	if err != nil {
		return Principal{}, err
	}
	sum := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 || revoked {
		return Principal{}, ErrInvalidAPIKey
	}
	if err := s.touch(ctx, tx, tenant, id, lastUsed); err != nil {
		return Principal{}, err
	}
	return Principal{Subject: id, TenantID: tenant, Scopes: scopes, Method: AuthAPIKey, KeyID: prefix}, nil
}

// touch records the use of a key, at most once per LastUsedInterval so a
// busy key does not turn every request into a write.
func (s *APIKeys) touch(ctx context.Context, tx pgx.Tx, tenant, id string, lastUsed *time.Time) error {
	now := s.cfg.Now().UTC()
	if lastUsed != nil && now.Sub(*lastUsed) < s.cfg.LastUsedInterval {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE platform.tenancy_api_keys SET last_used_at = $3
		WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < $3)`, tenant, id, now)
	return err
}

// List returns the keys of the tenant in ctx, newest first, revoked ones
// included. The statement names the tenant besides row-level security, so
// a database sharded by tenant_id routes it to one shard.
func (s *APIKeys) List(ctx context.Context) ([]APIKey, error) {
	var keys []APIKey
	err := InTx(ctx, s.db, func(tx pgx.Tx) error {
		tenant, _ := TenantFrom(ctx) // InTx refused a context without one
		rows, err := tx.Query(ctx, `SELECT id::text, tenant_id::text, prefix, name, scopes, created_at, last_used_at, revoked_at
			FROM platform.tenancy_api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id`, tenant)
		if err != nil {
			return err
		}
		var k APIKey
		_, err = pgx.ForEachRow(rows, []any{&k.ID, &k.TenantID, &k.Prefix, &k.Name, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt}, func() error {
			keys = append(keys, k)
			return nil
		})
		return err
	})
	if err != nil && !errors.Is(err, ErrNoTenant) {
		return nil, fmt.Errorf("tenancy: list API keys: %w", err)
	}
	return keys, err
}

// Revoke revokes key id of the tenant in ctx, in its own transaction. The
// key is refused from then on. Revoking a revoked key keeps its first
// revocation time and succeeds; an unknown id is ErrAPIKeyNotFound.
func (s *APIKeys) Revoke(ctx context.Context, id string) error {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	err := InTxForTenant(ctx, s.db, tenant, func(tx pgx.Tx) error { return s.revokeTx(ctx, tx, tenant, id) })
	if err == nil && s.cache != nil {
		// Again after the commit: an authentication that read the row
		// before it may have cached the key meanwhile.
		if keyID, perr := uuid.Parse(id); perr == nil {
			s.cache.forget(tenant, keyID.String())
		}
	}
	return err
}

// RevokeTx is Revoke inside the caller's transaction tx, for the tenant of
// tx. tx must already be scoped to a tenant (ErrNoTenant otherwise); it is
// never re-scoped, and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (s *APIKeys) RevokeTx(ctx context.Context, tx pgx.Tx, id string) error {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return err
	}
	return s.revokeTx(ctx, tx, tenant, id)
}

// revokeTx revokes key id of tenant, the tenant tx is scoped to.
func (s *APIKeys) revokeTx(ctx context.Context, tx pgx.Tx, tenant, id string) error {
	keyID, err := uuid.Parse(id)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrAPIKeyNotFound, pgtext.Clean(id, 64))
	}
	tag, err := tx.Exec(ctx, `UPDATE platform.tenancy_api_keys SET revoked_at = coalesce(revoked_at, $3)
		WHERE tenant_id = $1 AND id = $2`, tenant, keyID, s.cfg.Now().UTC())
	if err != nil {
		return fmt.Errorf("tenancy: revoke API key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrAPIKeyNotFound, keyID)
	}
	if s.cache != nil {
		s.cache.forget(tenant, keyID.String())
	}
	return nil
}
