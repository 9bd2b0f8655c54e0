package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Execer is what Grant needs: satisfied by *pgx.Conn, pgx.Tx and *pgxpool.Pool.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Grant gives serving roles the use of the library's tables in schema:
// USAGE on the schema, SELECT, INSERT, UPDATE and DELETE on its tables,
// USAGE on its sequences and EXECUTE on its functions, and read-only access
// to the migrations table. It runs as the owner of the schema, after Apply.
//
// Those roles own nothing, so row-level security binds them (unless a role
// has BYPASSRLS, which only the background "system" role should).
func Grant(ctx context.Context, db Execer, schema string, roles ...string) error {
	if len(roles) == 0 {
		return nil
	}
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = pgx.Identifier{r}.Sanitize()
	}
	to := strings.Join(quoted, ", ")
	s := pgx.Identifier{schema}.Sanitize()
	table := pgx.Identifier{schema, TableName}.Sanitize()
	stmts := []string{
		"GRANT USAGE ON SCHEMA " + s + " TO " + to,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA " + s + " TO " + to,
		"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA " + s + " TO " + to,
		"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA " + s + " TO " + to,
		"REVOKE INSERT, UPDATE, DELETE ON " + table + " FROM " + to,
	}
	for _, stmt := range stmts {
		if _, err := db.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: grant on schema %s: %w", schema, err)
		}
	}
	return nil
}
