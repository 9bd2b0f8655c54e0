package dlq_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

const (
	tenantA = "11111111-1111-4111-8111-111111111111"
	tenantB = "22222222-2222-4222-8222-222222222222"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(dlq.Migrate))
}

// withTenant returns a context carrying tenant, as the authentication
// middleware's would on the request path.
func withTenant(t testing.TB, tenant string) context.Context {
	t.Helper()
	ctx, err := tenancy.WithTenant(context.Background(), tenant)
	require.NoError(t, err)
	return ctx
}

// makeDue moves the run time of jobs waiting for a retry or their RunAt to
// the database's now(), as the passing of time would.
func makeDue(t testing.TB, db *pgtest.DB, ids ...int64) {
	t.Helper()
	_, err := db.System.Exec(context.Background(), "UPDATE platform.dlq_jobs SET run_at = now() WHERE id = ANY($1) AND state = 'available'", ids)
	require.NoError(t, err)
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newClient builds a client over pool with quiet logs and fast polling.
func newClient(t testing.TB, pool *pgxpool.Pool, cfg dlq.Config) *dlq.Client {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	c, err := dlq.NewClient(pool, cfg)
	require.NoError(t, err)
	return c
}

// start starts c and stops it when the test ends.
func start(t testing.TB, c *dlq.Client) {
	t.Helper()
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
}

// createEffects creates a tenant-scoped table handlers write to as the app
// role, so tests can see that a job's effects ran under its tenant.
func createEffects(t testing.TB, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	for _, stmt := range []string{
		`CREATE TABLE platform.test_effects (
			id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			tenant_id uuid NOT NULL, job_id bigint NOT NULL, note text NOT NULL DEFAULT '')`,
		`ALTER TABLE platform.test_effects ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE platform.test_effects FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY test_effects_tenant ON platform.test_effects
			USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
			WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)`,
		`GRANT SELECT, INSERT, DELETE ON platform.test_effects TO ` + pgtest.AppRole + `, ` + pgtest.SystemRole,
	} {
		_, err := db.Owner.Exec(ctx, stmt)
		require.NoError(t, err)
	}
}

// recordEffect writes one effect row for the job in ctx, as the app role in
// a transaction scoped to the tenant the handler's context carries.
func recordEffect(ctx context.Context, app *pgxpool.Pool, note string) error {
	job, _ := dlq.JobFrom(ctx)
	return tenancy.InTx(ctx, app, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO platform.test_effects (tenant_id, job_id, note) VALUES ($1, $2, $3)", job.Tenant, job.ID, note)
		return err
	})
}

func jobInfo(t testing.TB, c *dlq.Client, id int64) *dlq.JobInfo {
	t.Helper()
	info, err := c.GetJob(context.Background(), id)
	require.NoError(t, err)
	return info
}

// waitState waits until the job reaches state (the workers run
// asynchronously; the wait is bounded, never an assertion on speed).
func waitState(t testing.TB, c *dlq.Client, id int64, state dlq.State) *dlq.JobInfo {
	t.Helper()
	var info *dlq.JobInfo
	require.Eventually(t, func() bool {
		var err error
		info, err = c.GetJob(context.Background(), id)
		return err == nil && info.State == state
	}, 30*time.Second, 10*time.Millisecond, "job %d never reached %s (last: %+v)", id, state, info)
	return info
}

func countJobs(t testing.TB, pool *pgxpool.Pool, where string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM platform.dlq_jobs WHERE "+where, args...).Scan(&n))
	return n
}
