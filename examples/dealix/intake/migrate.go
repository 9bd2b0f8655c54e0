package intake

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// Schema holds the reference server's own tables.
const Schema = "dealix"

//go:embed migrations/*.sql
var migrationFS embed.FS

// MigrationSource is this domain's set of migrations.
func MigrationSource() migrate.Source {
	return migrate.Source{Package: "intake", FS: migrationFS, Schema: Schema}
}

// Migrate creates or updates the meetings table and the unique index of
// intake leads, and (re)applies the meetings' row-level security policy.
// Run it as the schema's owner, after the leads migrations (a meeting belongs to a lead); it is safe on every start.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := migrate.Apply(ctx, pool, MigrationSource()); err != nil {
		return err
	}
	return rlspolicy.Apply(ctx, pool, Schema+".meetings")
}
