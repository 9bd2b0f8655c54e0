package outbound

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

// MigrationSource is this domain's set of migrations.
func MigrationSource() migrate.Source {
	return migrate.Source{Package: "outbound", FS: migrationFS, Schema: Schema}
}

// Migrate creates or updates the outbound tables and (re)applies their
// row-level security policies. Run it as the schema's owner; it is safe on
// every start.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := migrate.Apply(ctx, pool, MigrationSource()); err != nil {
		return err
	}
	for _, table := range []string{"outbound_campaigns", "outbound_messages", "outbound_fake_mailbox"} {
		if err := rlspolicy.Apply(ctx, pool, Schema+"."+table); err != nil {
			return err
		}
	}
	return nil
}
