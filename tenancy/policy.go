package tenancy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// PolicyName is the name of the row-level security policy that PolicySQL
// creates on a tenant-scoped table.
const PolicyName = "tenant_isolation"

// TenantPredicate is the condition every tenant-scoped row must meet, both
// to be seen (USING) and to be written (WITH CHECK). NULLIF turns an unset
// or empty setting into NULL, which matches no row: no tenant, no rows.
const TenantPredicate = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"

// ErrInvalidTable is returned for a table name that is not one or two plain
// SQL identifiers ("table" or "schema.table").
var ErrInvalidTable = errors.New("tenancy: invalid table name")

var identifierPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// PolicySQL returns the statements that make table tenant-scoped: ENABLE
// and FORCE ROW LEVEL SECURITY (FORCE so the table's owner is bound too),
// then the one policy named PolicyName with USING and WITH CHECK on
// TenantPredicate, replacing any earlier policy of that name. Running them
// again changes nothing, so they are idempotent.
//
// table is "name" or "schema.name", each part a plain identifier; anything
// else is refused with ErrInvalidTable so the name never needs escaping
// beyond quoting.
func PolicySQL(table string) ([]string, error) {
	ident, err := parseTable(table)
	if err != nil {
		return nil, err
	}
	quoted := ident.Sanitize()
	policy := pgx.Identifier{PolicyName}.Sanitize()
	return []string{
		"ALTER TABLE " + quoted + " ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE " + quoted + " FORCE ROW LEVEL SECURITY",
		"DROP POLICY IF EXISTS " + policy + " ON " + quoted,
		"CREATE POLICY " + policy + " ON " + quoted +
			" USING (" + TenantPredicate + ") WITH CHECK (" + TenantPredicate + ")",
	}, nil
}

// ApplyPolicy runs PolicySQL(table) in one transaction of db, so the table
// is never left with row-level security on but no policy (which would hide
// every row) or the reverse. Run it as the table's owner.
func ApplyPolicy(ctx context.Context, db Beginner, table string) error {
	stmts, err := PolicySQL(table)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("tenancy: apply policy to %s: %w", table, err)
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
