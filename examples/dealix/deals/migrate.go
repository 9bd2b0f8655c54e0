package deals

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// Schema holds the reference server's own tables, apart from the
// library's schema.
const Schema = "dealix"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Tables are the domain's tables, each under the library's tenant policy.
var Tables = []string{"deals", "deal_evidence", "deal_tasks", "deal_followups_sent"}

// MigrationSource is this domain's set of migrations.
func MigrationSource() migrate.Source {
	return migrate.Source{Package: "deals", FS: migrationFS, Schema: Schema}
}

// Migrate creates or updates the deals tables and (re)applies their
// row-level security policy. Run it as the schema's owner, after
// leads.Migrate (a deal may name its lead); it is safe on every start.
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
