package tenancy

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate creates or updates the package's tables in schema platform (the
// API-key table). Safe to call on every start; run it as the role that owns
// the schema, then grant the app and system roles the use of the tables.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "tenancy", FS: migrationFS})
	return err
}
