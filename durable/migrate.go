package durable

import (
	"context"
	"embed"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate creates or updates the package's tables (durable_runs,
// durable_steps and durable_signals) in schema platform. Safe to call on
// every start: applied versions are recorded and skipped, under an advisory
// lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "durable", FS: migrationFS})
	return err
}
