package scoring

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

// Tables are the domain's tables, each under the tenant policy.
var Tables = []string{"lead_scores", "model_cache", "model_calls", "cost_daily", "cost_alerts"}

// MigrationSource is this domain's set of migrations.
func MigrationSource() migrate.Source {
	return migrate.Source{Package: "scoring", FS: migrationFS, Schema: Schema}
}

// Migrate creates or updates the scoring tables and (re)applies their
// row-level security policy. Run it as the schema's owner, after
// leads.Migrate (a score refers to its lead); it is safe on every start.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := migrate.Apply(ctx, pool, MigrationSource()); err != nil {
		return err
	}
	for _, t := range Tables {
		if err := rlspolicy.Apply(ctx, pool, Schema+"."+t); err != nil {
			return err
		}
	}
	return nil
}
