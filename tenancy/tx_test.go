package tenancy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// seedTwoTenants writes two notes and one API key per tenant through the
// system role, which bypasses row-level security.
func seedTwoTenants(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := testContext(t)
	for i, tenant := range []string{tenantA, tenantA, tenantB, tenantB} {
		_, err := db.System.Exec(ctx, "INSERT INTO platform.notes (tenant_id, id, body) VALUES ($1, $2, $3)", tenant, i+1, "note of "+tenant)
		require.NoError(t, err)
	}
	for i, tenant := range []string{tenantA, tenantB} {
		_, err := db.System.Exec(ctx, `INSERT INTO platform.tenancy_api_keys
			(tenant_id, id, prefix, key_hash, name, created_at)
			VALUES ($1, gen_random_uuid(), $2::text, sha256(convert_to($2::text, 'UTF8')), 'seed', now())`, tenant, "seed"+string(rune('a'+i)))
		require.NoError(t, err)
	}
}

var tenantTables = []string{"platform.notes", "platform.tenancy_api_keys"}

func countRows(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (total, ofA, ofB int, err error) {
	err = q.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id = $2) FROM "+table, tenantA, tenantB).
		Scan(&total, &ofA, &ofB)
	return total, ofA, ofB, err
}

func TestRLSIsolatesTenants(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)

	for _, table := range tenantTables {
		t.Run(table, func(t *testing.T) {
			// The system role sees both tenants: the fixture is not empty.
			total, ofA, ofB, err := countRows(ctx, db.System, table)
			require.NoError(t, err)
			require.Positive(t, ofA)
			require.Positive(t, ofB)
			require.Equal(t, ofA+ofB, total)

			// No tenant set at all.
			total, _, _, err = countRows(ctx, db.App, table)
			require.NoError(t, err)
			require.Zero(t, total, "no tenant must mean no rows")

			// An empty setting.
			err = pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', '', true)"); err != nil {
					return err
				}
				total, _, _, err = countRows(ctx, tx, table)
				return err
			})
			require.NoError(t, err)
			require.Zero(t, total, "an empty tenant must mean no rows")

			// An unknown tenant.
			err = tenancy.InTx(tenantContext(t, tenantUnknown), db.App, func(tx pgx.Tx) error {
				total, _, _, err = countRows(ctx, tx, table)
				return err
			})
			require.NoError(t, err)
			require.Zero(t, total)

			// Tenant A: exactly A's rows.
			err = tenancy.InTx(tenantContext(t, tenantA), db.App, func(tx pgx.Tx) error {
				var gotA, gotB int
				total, gotA, gotB, err = countRows(ctx, tx, table)
				require.Equal(t, ofA, gotA)
				require.Zero(t, gotB)
				return err
			})
			require.NoError(t, err)
			require.Equal(t, ofA, total)
		})
	}
}

func TestRLSRefusesWritesForAnotherTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctxA := tenantContext(t, tenantA)

	insert := tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctxA, "INSERT INTO platform.notes (tenant_id, id, body) VALUES ($1, 100, 'forged')", tenantB)
		return err
	})
	requireRLSViolation(t, insert)

	// Moving A's own row to B violates WITH CHECK.
	update := tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctxA, "UPDATE platform.notes SET tenant_id = $1 WHERE id = 1", tenantB)
		if err == nil && tag.RowsAffected() == 0 {
			return errors.New("the update touched no row")
		}
		return err
	})
	requireRLSViolation(t, update)

	// B's rows are invisible to an UPDATE scoped to A.
	err := tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctxA, "UPDATE platform.notes SET body = 'overwritten' WHERE tenant_id = $1", tenantB)
		require.Zero(t, tag.RowsAffected())
		return err
	})
	require.NoError(t, err)

	var forged, moved, overwritten int
	require.NoError(t, db.System.QueryRow(ctxA, `SELECT
		count(*) FILTER (WHERE id = 100), count(*) FILTER (WHERE id = 1 AND tenant_id = $1),
		count(*) FILTER (WHERE body = 'overwritten') FROM platform.notes`, tenantB).Scan(&forged, &moved, &overwritten))
	require.Zero(t, forged+moved+overwritten, "nothing was written for tenant B")
}

func requireRLSViolation(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	require.Contains(t, err.Error(), "row-level security")
}

func TestInTxWithoutTenantIsDenied(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	called := false
	err := tenancy.InTx(testContext(t), db.App, func(pgx.Tx) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	require.False(t, called)

	err = tenancy.InTenantTx(testContext(t), db.System, "1; DROP TABLE x", func(pgx.Tx) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
	require.False(t, called)
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	ctxA := tenantContext(t, tenantA)
	boom := errors.New("boom")
	err := tenancy.InTx(ctxA, db.App, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctxA, "INSERT INTO platform.notes (tenant_id, id, body) VALUES ($1, 1, 'x')", tenantA); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	total, _, _, err := countRows(ctxA, db.System, "platform.notes")
	require.NoError(t, err)
	require.Zero(t, total)
}

func TestInTenantTxOnSystemRoleScopesToNamedTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)
	// The system role bypasses RLS for reads, so InTenantTx's value is the
	// setting it makes visible to SQL that reads it, as triggers and
	// defaults do; the helper must set exactly the named tenant.
	var setting string
	err := tenancy.InTenantTx(ctx, db.System, tenantB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&setting)
	})
	require.NoError(t, err)
	require.Equal(t, tenantB, setting)

	// On the app role the same helper binds RLS to that tenant.
	var ofB int
	err = tenancy.InTenantTx(ctx, db.App, tenantB, func(tx pgx.Tx) error {
		_, _, ofB, err = countRows(ctx, tx, "platform.notes")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 2, ofB)
}

func TestPooledConnectionDoesNotLeakTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)

	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	var seen int
	err = tenancy.InTx(tenantContext(t, tenantA), pool, func(tx pgx.Tx) error {
		seen, _, _, err = countRows(ctx, tx, "platform.notes")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 2, seen)

	// The same (only) connection, no tenant: nothing.
	var setting string
	require.NoError(t, pool.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	require.Empty(t, setting)
	total, _, _, err := countRows(ctx, pool, "platform.notes")
	require.NoError(t, err)
	require.Zero(t, total)
}

func TestSetTenantTx(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)
	err := pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
		return tenancy.SetTenantTx(ctx, tx)
	})
	require.ErrorIs(t, err, tenancy.ErrNoTenant)

	ctxB := tenantContext(t, tenantB)
	var ofB int
	err = pgx.BeginFunc(ctxB, db.App, func(tx pgx.Tx) error {
		if err := tenancy.SetTenantTx(ctxB, tx); err != nil {
			return err
		}
		_, _, ofB, err = countRows(ctxB, tx, "platform.notes")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 2, ofB)
}

func TestInTxOnConnectionAndSavepoint(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctxA := tenantContext(t, tenantA)

	// A *pgx.Conn takes the one-round-trip BEGIN.
	conn, err := db.App.Acquire(ctxA)
	require.NoError(t, err)
	defer conn.Release()
	var ofA, ofB int
	err = tenancy.InTx(ctxA, conn.Conn(), func(tx pgx.Tx) error {
		_, ofA, ofB, err = countRows(ctxA, tx, "platform.notes")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, []int{2, 0}, []int{ofA, ofB})

	// A pgx.Tx opens a savepoint and sets the tenant with internal/rls.
	err = pgx.BeginFunc(ctxA, conn, func(outer pgx.Tx) error {
		return tenancy.InTenantTx(ctxA, outer, tenantB, func(tx pgx.Tx) error {
			_, ofA, ofB, err = countRows(ctxA, tx, "platform.notes")
			return err
		})
	})
	require.NoError(t, err)
	require.Equal(t, []int{0, 2}, []int{ofA, ofB})

	// Nothing outlives the transaction on this connection.
	total, _, _, err := countRows(ctxA, conn, "platform.notes")
	require.NoError(t, err)
	require.Zero(t, total)
}
