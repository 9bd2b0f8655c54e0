package dlq

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate creates or updates the package's table (platform.dlq_jobs), its
// sequence and its indexes in schema platform. Safe to call on
// every start; run it as the role that owns the schema, then grant the app
// and system roles SELECT, INSERT, UPDATE and DELETE on the table and USAGE
// on the sequence.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "dlq", FS: migrationFS})
	return err
}
