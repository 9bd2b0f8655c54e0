package rls

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
)

// Setting is the PostgreSQL setting the RLS policies read.
const Setting = "app.tenant_id"

// SetTenantSQL scopes the rest of a transaction to the tenant in $1. It is
// the one spelling of that statement in the library.
const SetTenantSQL = "SELECT set_config('" + Setting + "', $1, true)"

// currentTenantSQL reads the tenant a transaction is scoped to (” when
// none).
const currentTenantSQL = "SELECT coalesce(current_setting('" + Setting + "', true), '')"

// ErrInvalidTenant is errs.ErrInvalidTenant.
var ErrInvalidTenant = errs.ErrInvalidTenant

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and pgx.Tx (a
// savepoint) satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Querier reads one row: a pgx.Tx, a pool or a connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ParseTenant validates a tenant id and returns it in canonical form.
func ParseTenant(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", fmt.Errorf("%w: %q", ErrInvalidTenant, pgtext.Clean(s, 64))
	}
	return id.String(), nil
}

// SetTenant scopes the rest of tx to tenant. Only code that opened tx
// itself may call it: a …Tx method given the caller's transaction never
// re-scopes it (see CheckTx).
func SetTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	canonical, err := ParseTenant(tenant)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, SetTenantSQL, canonical); err != nil {
		return fmt.Errorf("rls: set tenant: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction of db scoped to tenant, committing when fn
// returns nil and rolling back otherwise (or when fn panics).
func InTx(ctx context.Context, db Beginner, tenant string, fn func(pgx.Tx) error) error {
	canonical, err := ParseTenant(tenant)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := SetTenant(ctx, tx, canonical); err != nil {
			return err
		}
		return fn(tx)
	})
}

// ScopedTx is implemented by a transaction whose opener scoped it itself
// and remembers to which tenant (the request transaction of idempotency's
// transactional mode): TxTenant takes the tenant from ScopedTenant instead
// of asking the server. ScopedTenant returns "" once the transaction has
// ended, and TxTenant then asks, so the caller sees the transaction's own
// error.
//
// Trusting it is safe even against a caller that re-scopes the
// transaction with a set_config of its own: every tenant table's policy
// compares tenant_id with the setting, so a write naming the remembered
// tenant is refused by WITH CHECK and a read naming it finds no row.
type ScopedTx interface {
	ScopedTenant() string
}

// TxTenant returns the tenant tx is scoped to, or errs.ErrNoTenant when it
// is not scoped. A ScopedTx answers without a round trip.
func TxTenant(ctx context.Context, tx Querier) (string, error) {
	if s, ok := tx.(ScopedTx); ok {
		if tenant := s.ScopedTenant(); tenant != "" {
			return tenant, nil
		}
	}
	var tenant string
	if err := tx.QueryRow(ctx, currentTenantSQL).Scan(&tenant); err != nil {
		return "", fmt.Errorf("rls: read the transaction's tenant: %w", err)
	}
	if tenant == "" {
		return "", errs.ErrNoTenant
	}
	return tenant, nil
}

// CheckTx applies the library's rule for a …Tx call: tx must already be
// scoped to a tenant (else errs.ErrNoTenant), and when ctx names a tenant it
// must be that one (else a *errs.TenantMismatchError). It returns the
// transaction's tenant and never changes the transaction's scope.
func CheckTx(ctx context.Context, tx Querier) (string, error) {
	txTenant, err := TxTenant(ctx, tx)
	if err != nil {
		return "", err
	}
	if ctxTenant, ok := TenantFrom(ctx); ok && ctxTenant != txTenant {
		return "", &errs.TenantMismatchError{Context: ctxTenant, Transaction: txTenant}
	}
	return txTenant, nil
}
