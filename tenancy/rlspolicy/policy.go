package rlspolicy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/dbx"
)

// DB is the database handle Apply and Audit take: the methods of
// *pgxpool.Pool the library calls. A pool, a *pgx.Conn or a pgx.Tx
// satisfies it. It is the same interface in every package of the library.
type DB = dbx.DB

// Name is the name of the row-level security policy that SQL creates on a
// tenant-scoped table.
const Name = "tenant_isolation"

// TenantPredicate is the condition every tenant-scoped row must meet, both
// to be seen (USING) and to be written (WITH CHECK). NULLIF turns an unset
// or empty setting into NULL, which matches no row: no tenant, no rows.
// Audit accepts a permissive policy only when both its expressions are
// exactly this one, as PostgreSQL stores it.
const TenantPredicate = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"

// ErrInvalidTable is returned for a table name that is not one or two plain
// SQL identifiers ("table" or "schema.table").
var ErrInvalidTable = errors.New("rlspolicy: invalid table name")

var identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// SQL returns the statements that make table tenant-scoped: ENABLE and
// FORCE ROW LEVEL SECURITY (FORCE so the table's owner is bound too), then
// the one policy named Name with USING and WITH CHECK on TenantPredicate,
// replacing any earlier policy of that name. Running them again changes
// nothing, so they are idempotent.
//
// table is "name" or "schema.name", each part a plain identifier; anything
// else is refused with ErrInvalidTable so the name never needs escaping
// beyond quoting.
func SQL(table string) ([]string, error) {
	ident, err := parseTable(table)
	if err != nil {
		return nil, err
	}
	quoted := ident.Sanitize()
	policy := pgx.Identifier{Name}.Sanitize()
	return []string{
		"ALTER TABLE " + quoted + " ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE " + quoted + " FORCE ROW LEVEL SECURITY",
		"DROP POLICY IF EXISTS " + policy + " ON " + quoted,
		"CREATE POLICY " + policy + " ON " + quoted +
			" USING (" + TenantPredicate + ") WITH CHECK (" + TenantPredicate + ")",
	}, nil
}

// Apply runs SQL(table) in one transaction of db, so the table is never
// left with row-level security on but no policy (which would hide every
// row) or the reverse. Run it as the table's owner.
func Apply(ctx context.Context, db DB, table string) error {
	stmts, err := SQL(table)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("rlspolicy: apply to %s: %w", table, err)
			}
		}
		return nil
	})
}

func parseTable(table string) (pgx.Identifier, error) {
	parts := strings.Split(table, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w: %q", ErrInvalidTable, table)
	}
	for _, part := range parts {
		if !identifierPattern.MatchString(part) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidTable, table)
		}
	}
	return pgx.Identifier(parts), nil
}
