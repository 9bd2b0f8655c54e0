package dlq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

// skewedDB returns pools of db's app and system roles whose database clock
// — now() in every statement they run — is behind this process's clock by
// skew: a function platform.now() comes before pg_catalog's on their
// search path. Seen from the database, this process's clock runs skew
// ahead, as an instance's whose clock is off would.
func skewedDB(t *testing.T, db *pgtest.DB, skew time.Duration) (app, system *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Owner.Exec(ctx, `CREATE FUNCTION platform.now() RETURNS timestamptz LANGUAGE sql STABLE
		AS $$ SELECT pg_catalog.now() - `+pgx.Identifier{}.Sanitize()+`'`+skew.String()+`'::interval $$`)
	require.NoError(t, err)
	for _, role := range []string{pgtest.AppRole, pgtest.SystemRole} {
		_, err := db.Admin.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+" IN DATABASE "+pgx.Identifier{db.Name}.Sanitize()+
			" SET search_path = platform, pg_catalog")
		require.NoError(t, err)
	}
	open := func(role pgtest.Role) *pgxpool.Pool {
		pool, err := pgxpool.New(ctx, db.URL(role))
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		return pool
	}
	app, system = open(pgtest.RoleApp), open(pgtest.RoleSystem)
	var dbNow time.Time
	require.NoError(t, system.QueryRow(ctx, "SELECT now()").Scan(&dbNow))
	require.Greater(t, time.Since(dbNow), skew-time.Minute, "the database's clock is behind")
	return app, system
}

// TestLeasesAndDueTimesFollowTheDatabaseClock runs every part of the queue
// on a database whose clock is six hours behind the process's. Were any
// lease, due time or expiry computed from the process's clock, a job
// enqueued now would not be due for six hours, a live lease would look
// six hours expired to the rescuer, and a retry would be scheduled six
// hours late.
func TestLeasesAndDueTimesFollowTheDatabaseClock(t *testing.T) {
	t.Parallel()
	const skew = 6 * time.Hour
	db := pgtest.New(t)
	appPool, sysPool := skewedDB(t, db, skew)
	ctx := context.Background()
	app := newClient(t, appPool, dlq.Config{})
	sys := newClient(t, sysPool, dlq.Config{})

	started, release := make(chan int64, 4), make(chan error)
	worker := newClient(t, sysPool, dlq.Config{
		Backoff: dlq.BackoffFunc(func(int) time.Duration { return time.Minute }),
		Queues: map[string]dlq.QueueConfig{"q": {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			started <- job.ID
			return <-release
		})}},
	})
	res, err := app.Enqueue(withTenant(t, tenantA), dlq.JobParams{Queue: "q", MaxAttempts: 3})
	require.NoError(t, err)
	info := jobInfo(t, sys, res.ID)
	require.True(t, info.RunAt.Equal(info.CreatedAt))
	require.Greater(t, time.Since(info.RunAt), skew-time.Minute, "due at the database's now()")
	start(t, worker)
	require.Equal(t, res.ID, <-started, "due at once")

	// The lease runs from the database's clock, so it is live for the
	// database and another client's rescuer leaves it alone, though it
	// ended hours ago by this process's clock.
	var leaseUntil time.Time
	var live bool
	require.NoError(t, sysPool.QueryRow(ctx, "SELECT lease_until, lease_until > now() FROM platform.dlq_jobs WHERE id = $1", res.ID).Scan(&leaseUntil, &live))
	require.True(t, live)
	require.True(t, leaseUntil.Before(time.Now()), "by this process's clock the lease is long over")
	n, err := sys.Rescue(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a live lease is not stolen")

	// A failure schedules the retry a minute after the database's now().
	release <- errors.New("try again")
	require.Eventually(t, func() bool {
		info = jobInfo(t, sys, res.ID)
		return info.State == dlq.StateAvailable && len(info.Errors) == 1
	}, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, time.Minute, info.RunAt.Sub(info.Errors[0].At))
	require.Greater(t, time.Since(info.Errors[0].At), skew-time.Minute, "recorded at the database's now()")
	stats, err := sys.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, dlq.QueueStats{Queue: "q", Retrying: 1}, stats[0], "waiting for its retry, not due")

	// Due by the database's clock, it runs again and completes.
	makeDue(t, db, res.ID)
	require.Equal(t, res.ID, <-started)
	release <- nil
	info = waitState(t, sys, res.ID, dlq.StateCompleted)
	require.Equal(t, 2, info.Attempt)
}
