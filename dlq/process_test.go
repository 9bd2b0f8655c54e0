package dlq_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

const (
	// envChild marks a worker process started by a test in this file and
	// says which; envChildURL is the system role's URL of the parent's
	// test database.
	envChild    = "DLQ_TEST_CHILD"
	envChildURL = "DLQ_TEST_CHILD_URL"
)

// childCommand prepares this test binary to run the test named by pattern
// as a worker process on db.
func childCommand(t *testing.T, ctx context.Context, pattern, mode string, db *pgtest.DB) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envChild+"="+mode,
		envChildURL+"="+db.URL(pgtest.RoleSystem),
		// The child uses the parent's server rather than a container of
		// its own.
		pgtest.EnvDatabaseURL+"="+pgtest.AdminURL(),
	)
	return cmd
}

func childPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), os.Getenv(envChildURL))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func insertEffect(ctx context.Context, pool *pgxpool.Pool, job *dlq.Job, note string) error {
	_, err := pool.Exec(ctx, "INSERT INTO platform.test_effects (tenant_id, job_id, note) VALUES ($1, $2, $3)", job.Tenant, job.ID, note)
	return err
}

// TestKilledWorkerLosesNoJob runs a worker in a child process, kills it
// with SIGKILL in the middle of a job, and sees a worker here rescue the
// job once its lease expires and complete it.
func TestKilledWorkerLosesNoJob(t *testing.T) {
	if os.Getenv(envChild) == "kill9" {
		runStuckWorker(t)
		return
	}
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	res, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q"})
	require.NoError(t, err)

	childCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	child := childCommand(t, childCtx, "^TestKilledWorkerLosesNoJob$", "kill9", db)
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	require.NoError(t, child.Start())
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, db.System.QueryRow(ctx, "SELECT count(*) FROM platform.test_effects WHERE note = 'started'").Scan(&n))
		return n == 1
	}, time.Minute, 10*time.Millisecond, "the child never started the job; output:\n%s", &out)
	sys := newClient(t, db.System, dlq.Config{})
	require.Equal(t, dlq.StateRunning, jobInfo(t, sys, res.ID).State)
	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	err = child.Wait()
	require.ErrorContains(t, err, "signal: killed")

	worker := newClient(t, db.System, dlq.Config{RescueInterval: 100 * time.Millisecond, Queues: map[string]dlq.QueueConfig{
		"q": {Handler: dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
			return recordEffect(ctx, db.App, "done")
		})},
	}})
	start(t, worker)
	info := waitState(t, worker, res.ID, dlq.StateCompleted)
	require.Equal(t, 2, info.Attempt)
	require.Len(t, info.Errors, 1)
	require.Equal(t, dlq.ErrLeaseExpired.Error(), info.Errors[0].Error)
	var done int
	require.NoError(t, db.System.QueryRow(ctx, "SELECT count(*) FROM platform.test_effects WHERE note = 'done' AND job_id = $1", res.ID).Scan(&done))
	require.Equal(t, 1, done)
}

// runStuckWorker is the child of TestKilledWorkerLosesNoJob: its handler
// records that it started and then never returns.
func runStuckWorker(t *testing.T) {
	pool := childPool(t)
	worker := newClient(t, pool, dlq.Config{LeaseGrace: 500 * time.Millisecond, Queues: map[string]dlq.QueueConfig{
		"q": {Timeout: time.Second, Handler: dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
			if err := insertEffect(ctx, pool, job, "started"); err != nil {
				return err
			}
			select {} // killed here
		})},
	}})
	require.NoError(t, worker.Start(context.Background()))
	time.Sleep(2 * time.Minute) // the parent kills this process long before
	t.Fatal("the parent never killed this worker")
}

// TestTwoWorkerProcessesNeverRunOneJobTogether runs two worker processes
// on one queue. Each attempt takes a transaction-level advisory lock on its
// job id while it runs: a second holder would find it taken. Every job runs
// exactly once.
func TestTwoWorkerProcessesNeverRunOneJobTogether(t *testing.T) {
	if os.Getenv(envChild) == "pair" {
		runPairWorker(t)
		return
	}
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	childCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var outs [2]strings.Builder
	var children [2]*exec.Cmd
	for i := range children {
		children[i] = childCommand(t, childCtx, "^TestTwoWorkerProcessesNeverRunOneJobTogether$", "pair", db)
		children[i].Stdout, children[i].Stderr = &outs[i], &outs[i]
		require.NoError(t, children[i].Start())
	}
	// Enqueue once both workers are up, so that both compete.
	require.Eventually(t, func() bool {
		var ready int
		require.NoError(t, db.System.QueryRow(ctx, "SELECT count(*) FROM platform.test_effects WHERE note = 'ready'").Scan(&ready))
		return ready == 2
	}, time.Minute, 10*time.Millisecond)
	const jobs = 300
	params := make([]dlq.JobParams, jobs)
	for i := range params {
		params[i] = dlq.JobParams{Queue: "q", MaxAttempts: 1}
	}
	_, err := app.EnqueueManyForTenant(ctx, tenantA, params)
	require.NoError(t, err)
	for i, child := range children {
		require.NoError(t, child.Wait(), "child %d output:\n%s", i, &outs[i])
	}
	require.Equal(t, jobs, countJobs(t, db.System, "state = 'completed'"))
	var runs, distinct, clashes int
	require.NoError(t, db.System.QueryRow(ctx, `SELECT count(*) FILTER (WHERE note <> 'clash'), count(DISTINCT job_id), count(*) FILTER (WHERE note = 'clash')
		FROM platform.test_effects WHERE note <> 'ready'`).Scan(&runs, &distinct, &clashes))
	require.Zero(t, clashes)
	require.Equal(t, jobs, runs, "each job ran exactly once")
	require.Equal(t, jobs, distinct)
	var pids int
	require.NoError(t, db.System.QueryRow(ctx, "SELECT count(DISTINCT note) FROM platform.test_effects WHERE note <> 'ready'").Scan(&pids))
	require.Equal(t, 2, pids, "both processes worked")
}

// runPairWorker is a child of TestTwoWorkerProcessesNeverRunOneJobTogether:
// it works the queue until no job is left.
func runPairWorker(t *testing.T) {
	pool := childPool(t)
	me := "pid-" + strconv.Itoa(os.Getpid())
	worker := newClient(t, pool, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 8, FetchBatch: 4, Handler: dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				var locked bool
				if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", job.ID).Scan(&locked); err != nil {
					return err
				}
				note := me
				if !locked {
					note = "clash"
				}
				time.Sleep(10 * time.Millisecond) // hold the job a moment, as real work would
				_, err := tx.Exec(ctx, "INSERT INTO platform.test_effects (tenant_id, job_id, note) VALUES ($1, $2, $3)", job.Tenant, job.ID, note)
				return err
			})
		})},
	}})
	start(t, worker)
	_, err := pool.Exec(context.Background(), "INSERT INTO platform.test_effects (tenant_id, job_id, note) VALUES ($1, 0, 'ready')", tenantA)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		var left, total int
		require.NoError(t, pool.QueryRow(context.Background(),
			"SELECT count(*) FILTER (WHERE state <> 'completed'), count(*) FROM platform.dlq_jobs").Scan(&left, &total))
		return total > 0 && left == 0
	}, time.Minute, 20*time.Millisecond)
}
