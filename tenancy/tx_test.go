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

	err = tenancy.InTxForTenant(testContext(t), db.System, "1; DROP TABLE x", func(pgx.Tx) error {
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

func TestInTxForTenantOnSystemRoleScopesToNamedTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)
	// The system role bypasses RLS for reads, so InTxForTenant's value is the
	// setting it makes visible to SQL that reads it, as triggers and
	// defaults do; the helper must set exactly the named tenant.
	var setting string
	err := tenancy.InTxForTenant(ctx, db.System, tenantB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&setting)
	})
	require.NoError(t, err)
	require.Equal(t, tenantB, setting)

	// On the app role the same helper binds RLS to that tenant.
	var ofB int
	err = tenancy.InTxForTenant(ctx, db.App, tenantB, func(tx pgx.Tx) error {
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

	// A pgx.Tx scoped to B: InTxForTenant(B) runs fn in a savepoint of it,
	// under the transaction's own scope.
	err = pgx.BeginFunc(ctxA, conn, func(outer pgx.Tx) error {
		if _, err := outer.Exec(ctxA, "SELECT set_config('app.tenant_id', $1, true)", tenantB); err != nil {
			return err
		}
		return tenancy.InTxForTenant(ctxA, outer, tenantB, func(tx pgx.Tx) error {
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

// txSetting reads the tenant tx is scoped to ("" for none).
func txSetting(t *testing.T, ctx context.Context, tx pgx.Tx) string {
	t.Helper()
	var setting string
	require.NoError(t, tx.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	return setting
}

// TestInTxNeverRescopesTheCallersTx is the savepoint leak: PostgreSQL keeps
// a set_config made in a savepoint after RELEASE, so a nested InTx that set
// the tenant would scope the rest of the caller's transaction to it.
func TestInTxNeverRescopesTheCallersTx(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctxA, ctxB := tenantContext(t, tenantA), tenantContext(t, tenantB)

	nested := map[string]func(pgx.Tx, func(pgx.Tx) error) error{
		"InTx with the context of B": func(txA pgx.Tx, fn func(pgx.Tx) error) error {
			return tenancy.InTx(ctxB, txA, fn)
		},
		"InTxForTenant B": func(txA pgx.Tx, fn func(pgx.Tx) error) error {
			return tenancy.InTxForTenant(ctxA, txA, tenantB, fn)
		},
	}
	for name, call := range nested {
		t.Run(name, func(t *testing.T) {
			called := false
			err := tenancy.InTx(ctxA, db.App, func(txA pgx.Tx) error {
				err := call(txA, func(pgx.Tx) error { called = true; return nil })
				var mismatch *tenancy.TenantMismatchError
				require.ErrorAs(t, err, &mismatch)
				require.ErrorIs(t, err, tenancy.ErrTenantMismatch)
				require.Equal(t, tenancy.TenantMismatchError{Context: tenantB, Transaction: tenantA}, *mismatch)

				// The caller's transaction is still scoped to A and
				// still sees exactly A's rows.
				require.Equal(t, tenantA, txSetting(t, ctxA, txA))
				_, ofA, ofB, err := countRows(ctxA, txA, "platform.notes")
				require.NoError(t, err)
				require.Equal(t, []int{2, 0}, []int{ofA, ofB})
				return nil
			})
			require.NoError(t, err)
			require.False(t, called, "fn must not run for another tenant")
		})
	}

	t.Run("same tenant runs in a savepoint", func(t *testing.T) {
		err := tenancy.InTx(ctxA, db.App, func(txA pgx.Tx) error {
			inner := tenancy.InTx(ctxA, txA, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctxA, "INSERT INTO platform.notes (tenant_id, id, body) VALUES ($1, 50, 'inner')", tenantA)
				if err != nil {
					return err
				}
				return errTestRollback
			})
			require.ErrorIs(t, inner, errTestRollback)
			// The savepoint rolled back alone; the caller's transaction
			// goes on, scoped to A.
			require.Equal(t, tenantA, txSetting(t, ctxA, txA))
			var n int
			require.NoError(t, txA.QueryRow(ctxA, "SELECT count(*) FROM platform.notes WHERE id = 50").Scan(&n))
			require.Zero(t, n)
			return tenancy.InTx(ctxA, txA, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctxA, "INSERT INTO platform.notes (tenant_id, id, body) VALUES ($1, 51, 'inner')", tenantA)
				return err
			})
		})
		require.NoError(t, err)
		var n int
		require.NoError(t, db.System.QueryRow(ctxA, "SELECT count(*) FROM platform.notes WHERE id = 51 AND tenant_id = $1", tenantA).Scan(&n))
		require.Equal(t, 1, n)
	})

	t.Run("an unscoped transaction is refused, not scoped", func(t *testing.T) {
		err := pgx.BeginFunc(ctxB, db.App, func(tx pgx.Tx) error {
			err := tenancy.InTx(ctxB, tx, func(pgx.Tx) error { return errors.New("must not run") })
			require.ErrorIs(t, err, tenancy.ErrNoTenant)
			require.Empty(t, txSetting(t, ctxB, tx))
			return nil
		})
		require.NoError(t, err)
	})
}
