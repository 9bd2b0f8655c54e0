package tenancy

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
)

// ErrNoTenant is returned by InTx, and by every service method that reads
// the tenant from the context, when the context carries no tenant; and by a
// …Tx call given a transaction that is not scoped to a tenant. Go code
// denies by default, as the row-level security policies do. It is the same
// value in every package of the library: errors.Is(err, tenancy.ErrNoTenant)
// matches it whichever package returned it.
var ErrNoTenant = errs.ErrNoTenant

// ErrTenantMismatch matches (errors.Is) the *TenantMismatchError a …Tx
// call returns when its context names a tenant other than its
// transaction's. It is the same value in every package of the library.
var ErrTenantMismatch = errs.ErrTenantMismatch

// TenantMismatchError is returned by every …Tx of the library whose context
// (or, for a …ForTenant variant, whose tenant argument) names a tenant other
// than the one the caller's transaction is scoped to. Nothing was written
// and the transaction's scope is unchanged: a …Tx never re-scopes the
// caller's transaction.
type TenantMismatchError = errs.TenantMismatchError

// DB is the database handle the package's constructors take: the methods of
// *pgxpool.Pool the library calls. A pool, a wrapped pool or a *pgx.Conn
// satisfies it. It is the same interface in every package of the library.
type DB = dbx.DB

// Setting is the PostgreSQL setting the row-level security policies read.
// InTx sets it with set_config(Setting, tenant, true), so it is local to the
// transaction and never outlives it on a pooled connection.
const Setting = rls.Setting

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and pgx.Tx (a
// savepoint) satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction scoped to the tenant carried by ctx,
// committing when fn returns nil and rolling back otherwise (also when fn
// panics). It returns ErrNoTenant, without touching the database, when ctx
// carries no tenant.
//
// What it does depends on db:
//
//   - A pool or a connection (anything with BeginTx: *pgxpool.Pool,
//     *pgxpool.Conn, *pgx.Conn) gets a new transaction that begins with
//     SELECT set_config('app.tenant_id', tenant, true), in one round trip.
//   - A pgx.Tx, or any other Beginner, is taken to be the caller's
//     transaction: fn runs in a savepoint of it, and that transaction must
//     already be scoped to the tenant. It is never re-scoped (PostgreSQL
//     keeps a setting made in a savepoint after RELEASE, so setting it there
//     would change the caller's scope): an unscoped transaction is refused
//     with ErrNoTenant, and one scoped to another tenant with a
//     *TenantMismatchError, before fn runs.
//
// Use it on the app role, which row-level security binds.
func InTx(ctx context.Context, db Beginner, fn func(pgx.Tx) error) error {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return inTx(ctx, db, tenant, fn)
}

// InTxForTenant runs fn in a transaction scoped to the explicitly named
// tenant, as InTx does for the context's tenant; the context's tenant, if
// any, is not consulted. It is meant for background work on the system role
// (queue workers, sweepers), which reads across tenants but must perform
// each job's own effects for that job's tenant only. A tenant id that is
// not a UUID is refused with ErrInvalidTenant before any SQL runs. Given a
// pgx.Tx it never re-scopes it, as InTx: a transaction scoped to another
// tenant is refused with a *TenantMismatchError whose Context field is
// tenantID.
func InTxForTenant(ctx context.Context, db Beginner, tenantID string, fn func(pgx.Tx) error) error {
	canonical, err := rls.ParseTenant(tenantID)
	if err != nil {
		return ErrInvalidTenant
	}
	return inTx(ctx, db, canonical, fn)
}

// txBeginner is what *pgxpool.Pool and *pgx.Conn offer beyond Beginner. A
// pgx.Tx does not have it, which is how inTx tells a new transaction from
// a savepoint.
type txBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// beginHead and beginTail surround the tenant in the BEGIN of inTx: BEGIN,
// then rls.SetTenantSQL with its $1 written as a string literal.
var beginHead, beginTail = func() (string, string) {
	head, tail, ok := strings.Cut(rls.SetTenantSQL, "$1")
	if !ok {
		panic("tenancy: rls.SetTenantSQL has no $1")
	}
	return "BEGIN; " + head + "'", "'" + tail
}()

// inTx runs fn in a transaction scoped to canonical, a tenant id already
// validated by rls.ParseTenant.
//
// When db can take a custom BEGIN (a pool or a connection), the BEGIN and
// the set_config travel as one simple-protocol query, saving a round trip
// per transaction. The tenant is written as a literal there, which is safe
// only because a canonical UUID holds nothing but hex digits and dashes.
// A failure after BEGIN leaves the connection in a failed transaction,
// which pgxpool discards rather than reuse. Any other Beginner opens a
// savepoint of the caller's transaction, whose scope is checked, not set.
func inTx(ctx context.Context, db Beginner, canonical string, fn func(pgx.Tx) error) error {
	if !isCanonicalUUID(canonical) {
		return ErrInvalidTenant
	}
	if b, ok := db.(txBeginner); ok {
		begin := beginHead + canonical + beginTail
		return pgx.BeginTxFunc(ctx, b, pgx.TxOptions{BeginQuery: begin}, fn)
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := checkTxTenant(ctx, tx, canonical); err != nil {
			return err
		}
		return fn(tx)
	})
}

// checkTxTenant is rls.CheckTx with the wanted tenant named explicitly:
// tx must be scoped to tenant. It never changes tx's scope.
func checkTxTenant(ctx context.Context, tx rls.Querier, tenant string) error {
	txTenant, err := rls.TxTenant(ctx, tx)
	if err != nil {
		return err
	}
	if txTenant != tenant {
		return &TenantMismatchError{Context: tenant, Transaction: txTenant}
	}
	return nil
}

// SetTenantTx scopes the rest of tx to the tenant carried by ctx (ErrNoTenant
// when it carries none). It is the one function of the library that sets the
// tenant of a transaction it did not open, so call it only on a transaction
// you opened yourself and have not handed to anyone: every …Tx method
// checks the scope of the transaction it is given and never sets it. InTx
// is the simpler choice otherwise.
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
