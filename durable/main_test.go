package durable_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

const (
	tenantA = "7a1c1a8e-0000-4000-8000-00000000000a"
	tenantB = "7a1c1a8e-0000-4000-8000-00000000000b"
)

// ctxA and ctxB carry tenantA and tenantB, as a request's context does
// after authentication.
var ctxA, ctxB = tenantContext(tenantA), tenantContext(tenantB)

func tenantContext(tenant string) context.Context {
	ctx, err := rls.WithTenant(context.Background(), tenant)
	if err != nil {
		panic(err)
	}
	return ctx
}

func TestMain(m *testing.M) {
	if os.Getenv(envCrashAppURL) != "" {
		os.Exit(crashChild())
	}
	pgtest.Main(m, pgtest.WithMigrations(durable.Migrate))
}

// newRuntime returns a runtime on db's app and system pools with a short
// poll interval, changed by edit. The lease is long enough that a busy
// machine does not let a live run's lease expire; tests of expiry set
// their own.
func newRuntime(t testing.TB, db *pgtest.DB, edit func(*durable.Config)) *durable.Runtime {
	t.Helper()
	cfg := durable.Config{App: db.App, System: db.System, Lease: 10 * time.Second, PollInterval: 20 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	rt, err := durable.New(cfg)
	require.NoError(t, err)
	return rt
}

// work runs rt's workers until the test ends.
func work(t testing.TB, rt *durable.Runtime) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// waitRun waits (bounded) for run to be final.
func waitRun(t testing.TB, rt *durable.Runtime, tenant, runID string) durable.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := rt.WaitForTenant(ctx, tenant, runID)
	require.NoError(t, err)
	return run
}

// waitStatus polls (bounded) until run has status.
func waitStatus(t testing.TB, rt *durable.Runtime, tenant, runID string, status durable.Status) durable.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := rt.GetForTenant(context.Background(), tenant, runID)
		require.NoError(t, err)
		if run.Status == status {
			return run
		}
		require.True(t, time.Now().Before(deadline), "run %s is %s, want %s", runID, run.Status, status)
		time.Sleep(10 * time.Millisecond)
	}
}

// travel moves every time stored for runID d into the past, as if the
// database's clock had advanced by d: its lease, due and wake-up times,
// its timestamps and the wake-up times its sleeps recorded. Only for a run
// no worker holds.
func travel(t testing.TB, db *pgtest.DB, runID string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Admin.Exec(ctx, `
		UPDATE platform.durable_runs SET lease_until = lease_until - $2::bigint * interval '1 microsecond',
			ready_at = ready_at - $2::bigint * interval '1 microsecond', wake_at = wake_at - $2::bigint * interval '1 microsecond',
			created_at = created_at - $2::bigint * interval '1 microsecond', updated_at = updated_at - $2::bigint * interval '1 microsecond',
			finished_at = finished_at - $2::bigint * interval '1 microsecond'
		WHERE id = $1`, runID, d.Microseconds())
	require.NoError(t, err)
	_, err = db.Admin.Exec(ctx, `
		UPDATE platform.durable_steps SET created_at = created_at - $2::bigint * interval '1 microsecond',
			output = CASE WHEN kind = 'sleep' THEN to_jsonb((output #>> '{}')::timestamptz - $2::bigint * interval '1 microsecond') ELSE output END
		WHERE run_id = $1`, runID, d.Microseconds())
	require.NoError(t, err)
}

// dbNow reads the database's clock.
func dbNow(t testing.TB, db *pgtest.DB) time.Time {
	t.Helper()
	var now time.Time
	require.NoError(t, db.Admin.QueryRow(context.Background(), "SELECT now()").Scan(&now))
	return now
}

// createEffects makes a tenant-scoped table where test steps count their
// side effects.
func createEffects(t testing.TB, db *pgtest.DB) {
	t.Helper()
	_, err := db.Owner.Exec(context.Background(), `
		CREATE TABLE platform.durable_test_effects (
			tenant_id uuid NOT NULL DEFAULT NULLIF(current_setting('app.tenant_id', true), '')::uuid,
			run_id text NOT NULL,
			step text NOT NULL);
		ALTER TABLE platform.durable_test_effects ENABLE ROW LEVEL SECURITY;
		ALTER TABLE platform.durable_test_effects FORCE ROW LEVEL SECURITY;
		CREATE POLICY effects_tenant ON platform.durable_test_effects
			USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
			WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
		GRANT SELECT, INSERT ON platform.durable_test_effects TO `+pgtest.AppRole+`, `+pgtest.SystemRole)
	require.NoError(t, err)
}

// effect records one side effect of step in the caller's tenant-scoped tx.
func effect(ctx context.Context, tx pgx.Tx, runID, step string) error {
	_, err := tx.Exec(ctx, "INSERT INTO platform.durable_test_effects (run_id, step) VALUES ($1, $2)", runID, step)
	return err
}

// effectOutsideTx records a side effect in a transaction of its own.
func effectOutsideTx(ctx context.Context, pool *pgxpool.Pool, tenant, runID, step string) error {
	_, err := pool.Exec(ctx, "INSERT INTO platform.durable_test_effects (tenant_id, run_id, step) VALUES ($1, $2, $3)", tenant, runID, step)
	return err
}

// effects counts the recorded side effects of runID by step.
func effects(t testing.TB, db *pgtest.DB, runID string) map[string]int {
	t.Helper()
	rows, err := db.Admin.Query(context.Background(),
		"SELECT step, count(*)::int FROM platform.durable_test_effects WHERE run_id = $1 GROUP BY step", runID)
	require.NoError(t, err)
	counts := map[string]int{}
	for rows.Next() {
		var step string
		var n int
		require.NoError(t, rows.Scan(&step, &n))
		counts[step] = n
	}
	require.NoError(t, rows.Err())
	return counts
}

// countRows counts rows of a durable table for runID, across tenants.
func countRows(t testing.TB, db *pgtest.DB, table, runID string) int {
	t.Helper()
	column := "run_id"
	if table == "durable_runs" {
		column = "id"
	}
	var n int
	require.NoError(t, db.Admin.QueryRow(context.Background(),
		"SELECT count(*) FROM platform."+table+" WHERE "+column+" = $1", runID).Scan(&n))
	return n
}
