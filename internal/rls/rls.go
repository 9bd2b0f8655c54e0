package rls

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Setting is the PostgreSQL setting the RLS policies read.
const Setting = "app.tenant_id"

// ErrInvalidTenant is returned for a tenant id that is not a UUID; it is
// refused before it reaches SQL.
var ErrInvalidTenant = errors.New("rls: tenant id is not a UUID")

// Beginner starts a transaction: *pgxpool.Pool, *pgx.Conn and pgx.Tx (a
// savepoint) satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ParseTenant validates a tenant id and returns it in canonical form.
func ParseTenant(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", fmt.Errorf("%w: %q", ErrInvalidTenant, truncate(s, 64))
	}
	return id.String(), nil
}

// SetTenant scopes the rest of tx to tenant.
func SetTenant(ctx context.Context, tx pgx.Tx, tenant string) error {
	canonical, err := ParseTenant(tenant)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('"+Setting+"', $1, true)", canonical); err != nil {
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
