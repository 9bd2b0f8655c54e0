package tenancy

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
)

// ErrNoTenant is returned by InTx, and by every service method that reads
// the tenant from the context, when the context carries no tenant. Go code
// denies by default, as the row-level security policies do. It is the same
// value in every package of the library: errors.Is(err, tenancy.ErrNoTenant)
// matches it whichever package returned it.
var ErrNoTenant = errs.ErrNoTenant

// ErrTenantMismatch matches (errors.Is) the *TenantMismatchError a …Tx
// call returns when its context names a tenant other than its
// transaction's.
var ErrTenantMismatch = errs.ErrTenantMismatch

// TenantMismatchError is returned by every …Tx of the library whose context
// names a tenant other than the one the caller's transaction is scoped to.
// A …Tx never changes the scope of the caller's transaction.
type TenantMismatchError = errs.TenantMismatchError

// Setting is the PostgreSQL setting the row-level security policies read.
// InTx sets it with set_config(Setting, tenant, true), so it is local to the
// transaction and never outlives it on a pooled connection.
const Setting = rls.Setting

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and pgx.Tx (a
// savepoint) satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction of db scoped to the tenant carried by ctx:
// it begins, runs SELECT set_config('app.tenant_id', tenant, true), then fn,
// and commits when fn returns nil or rolls back otherwise (also when fn
// panics). It returns ErrNoTenant, without touching the database, when ctx
// carries no tenant.
//
// Use it on the app role, which row-level security binds.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return inTx(ctx, db, tenant, fn)
}

// InTenantTx runs fn in a transaction of db scoped to the explicitly named
// tenant, as InTx does. It is meant for background work on the system role
// (queue workers, sweepers), which reads across tenants but must perform
// each job's own effects for that job's tenant only. A tenant id that is not
// a UUID is refused with ErrInvalidTenant before any SQL runs.
func InTenantTx(ctx context.Context, db Beginner, tenantID string, fn func(pgx.Tx) error) error {
	canonical, err := rls.ParseTenant(tenantID)
	if err != nil {
		return ErrInvalidTenant
	}
	return inTx(ctx, db, canonical, fn)
}

// txBeginner is what *pgxpool.Pool and *pgx.Conn offer beyond Beginner.
type txBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// inTx runs fn in a transaction scoped to canonical, a tenant id already
// validated by rls.ParseTenant.
//
// When db can take a custom BEGIN (a pool or a connection), the BEGIN and
// the set_config travel as one simple-protocol query, saving a round trip
// per transaction. The tenant is written as a literal there, which is safe
// only because a canonical UUID holds nothing but hex digits and dashes.
// A failure after BEGIN leaves the connection in a failed transaction,
// which pgxpool discards rather than reuse. Other Beginners (a pgx.Tx
// opening a savepoint) take the two-step path of internal/rls.
func inTx(ctx context.Context, db Beginner, canonical string, fn func(pgx.Tx) error) error {
	if !isCanonicalUUID(canonical) {
		return ErrInvalidTenant
	}
	if b, ok := db.(txBeginner); ok {
		begin := "BEGIN; SELECT set_config('" + Setting + "', '" + canonical + "', true)"
		return pgx.BeginTxFunc(ctx, b, pgx.TxOptions{BeginQuery: begin}, fn)
	}
	return rls.InTx(ctx, db, canonical, fn)
}

// SetTenantTx scopes the rest of the caller's transaction tx to the tenant
// carried by ctx. It is for code that opened its own transaction; InTx is
// the simpler choice otherwise.
func SetTenantTx(ctx context.Context, tx pgx.Tx) error {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return rls.SetTenant(ctx, tx, tenant)
}

// isCanonicalUUID reports whether s is a lower-case 8-4-4-4-12 UUID: the
// last guard before the tenant is written into SQL text.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
