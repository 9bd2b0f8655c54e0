package rls_test

import (
	"context"
	"embed"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

//go:embed testdata/migrations/*.sql
var migrations embed.FS

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(func(ctx context.Context, pool *pgxpool.Pool) error {
		_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "rls_test", FS: migrations, Dir: "testdata/migrations"})
		return err
	}))
}

const (
	tenantA = "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a"
	tenantB = "0d8a4a52-1d11-4c39-9a52-5f0b0b0b0b0b"
)

func TestInTxScopesToTheTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	for _, tenant := range []string{tenantA, tenantB, tenantB} {
		require.NoError(t, rls.InTx(ctx, db.App, tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO platform.items (tenant_id) VALUES ($1)", tenant)
			return err
		}))
	}
	count := func(tenant string) int {
		var n int
		require.NoError(t, rls.InTx(ctx, db.App, tenant, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, "SELECT count(*) FROM platform.items").Scan(&n)
		}))
		return n
	}
	require.Equal(t, 1, count(tenantA))
	require.Equal(t, 2, count(tenantB))
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO platform.items (tenant_id) VALUES ($1)", tenantA); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	var n int
	require.NoError(t, db.System.QueryRow(ctx, "SELECT count(*) FROM platform.items").Scan(&n))
	require.Zero(t, n)
}

func TestInvalidTenantNeverReachesSQL(t *testing.T) {
	t.Parallel()
	called := false
	for _, bad := range []string{"", "tenant-a", "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0", "'; DROP TABLE items; --", "{0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a}", "urn:uuid:0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a"} {
		// A nil Beginner would panic if InTx reached the database.
		err := rls.InTx(context.Background(), nil, bad, func(pgx.Tx) error { called = true; return nil })
		require.ErrorIs(t, err, rls.ErrInvalidTenant, bad)
	}
	require.False(t, called)
	got, err := rls.ParseTenant("0D8A4A52-1D11-4C39-9A52-5F0A0A0A0A0A")
	require.NoError(t, err)
	require.Equal(t, tenantA, got, "canonical lower-case form")
}
