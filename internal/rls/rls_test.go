package rls_test

import (
	"context"
	"embed"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/errs"
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

func TestCheckTxNeverReScopesTheCallersTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	ctxB, err := rls.WithTenant(ctx, tenantB)
	require.NoError(t, err)
	require.NoError(t, rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		got, err := rls.CheckTx(ctx, tx)
		require.NoError(t, err, "a context without a tenant takes the transaction's")
		require.Equal(t, tenantA, got)

		_, err = rls.CheckTx(ctxB, tx)
		var mismatch *errs.TenantMismatchError
		require.ErrorAs(t, err, &mismatch)
		require.ErrorIs(t, err, errs.ErrTenantMismatch)
		require.Equal(t, tenantB, mismatch.Context)
		require.Equal(t, tenantA, mismatch.Transaction)

		still, err := rls.TxTenant(ctx, tx)
		require.NoError(t, err)
		require.Equal(t, tenantA, still, "the caller's transaction keeps its tenant")
		return nil
	}))
}

func TestCheckTxRefusesAnUnscopedTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
		_, err := rls.CheckTx(ctx, tx)
		require.ErrorIs(t, err, errs.ErrNoTenant)
		return nil
	}))
}

func TestBatchScopesOnlyItsOwnStatements(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	err := rls.Batch(ctx, db.App, tenantA, func(b *pgx.Batch) {
		b.Queue("INSERT INTO platform.items (tenant_id) VALUES ($1)", tenantA)
		b.Queue("INSERT INTO platform.items (tenant_id) VALUES ($1)", tenantA)
	}, nil)
	require.NoError(t, err)

	// A statement for another tenant fails the whole batch: nothing of it
	// is kept.
	err = rls.Batch(ctx, db.App, tenantA, func(b *pgx.Batch) {
		b.Queue("INSERT INTO platform.items (tenant_id) VALUES ($1)", tenantA)
		b.Queue("INSERT INTO platform.items (tenant_id) VALUES ($1)", tenantB)
	}, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		_, err := br.Exec()
		return err
	})
	require.Error(t, err, "row-level security refuses tenant B's row")

	rows, err := rls.Query(ctx, db.App, tenantA, "SELECT tenant_id::text FROM platform.items")
	require.NoError(t, err)
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{tenantA, tenantA}, tenants)

	// The setting ended with the batch: the pooled connections carry none.
	var setting string
	require.NoError(t, db.App.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	require.Empty(t, setting)
}

func TestContextCarriesTheCanonicalTenant(t *testing.T) {
	t.Parallel()
	ctx, err := rls.WithTenant(context.Background(), "0D8A4A52-1D11-4C39-9A52-5F0A0A0A0A0A")
	require.NoError(t, err)
	got, ok := rls.TenantFrom(ctx)
	require.True(t, ok)
	require.Equal(t, tenantA, got)
	_, err = rls.WithTenant(context.Background(), "nope")
	require.ErrorIs(t, err, errs.ErrInvalidTenant)
	_, ok = rls.TenantFrom(context.Background())
	require.False(t, ok)
}
