package rlspolicy_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// The library's own tenant table (tenancy's API keys) is in every test
// database, so the audit of a clean database covers a real one.
func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(tenancy.Migrate))
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func grant(t testing.TB, owner *pgxpool.Pool, table string) {
	t.Helper()
	_, err := owner.Exec(testContext(t), "GRANT SELECT, INSERT, UPDATE, DELETE ON "+table+" TO "+pgtest.AppRole+", "+pgtest.SystemRole)
	require.NoError(t, err)
}

func exec(t testing.TB, db *pgxpool.Pool, stmts ...string) {
	t.Helper()
	for _, stmt := range stmts {
		_, err := db.Exec(testContext(t), stmt)
		require.NoError(t, err, stmt)
	}
}
