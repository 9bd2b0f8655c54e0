package durable_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// Environment of the crashing child process.
const (
	envCrashAppURL    = "DURABLE_CRASH_APP_URL"
	envCrashSystemURL = "DURABLE_CRASH_SYSTEM_URL"
	envCrashKillAfter = "DURABLE_CRASH_KILL_AFTER"
)

// registerFive registers a workflow of five steps, each recording one side
// effect: odd steps as plain steps (effect in its own transaction), even
// ones as transactional steps. die, when not nil, is called with k right
// after step k's checkpoint committed (k = 0: before the first step).
func registerFive(t testing.TB, rt *durable.Runtime, system *pgxpool.Pool, die func(k int)) *durable.Workflow[int, int] {
	wf, err := durable.Register(rt, "five", func(ctx context.Context, base int) (int, error) {
		run, _ := durable.CurrentRun(ctx)
		total := base
		for i := 1; i <= 5; i++ {
			if die != nil {
				die(i - 1)
			}
			name := fmt.Sprintf("s%d", i)
			var err error
			if i%2 == 0 {
				total, err = durable.TxStep(ctx, name, func(ctx context.Context, tx pgx.Tx) (int, error) {
					return total + i*i, effect(ctx, tx, run.RunID, name)
				})
			} else {
				total, err = durable.Step(ctx, name, func(ctx context.Context) (int, error) {
					return total + i*i, effectOutsideTx(ctx, system, run.Tenant, run.RunID, name)
				})
			}
			if err != nil {
				return 0, err
			}
		}
		if die != nil {
			die(5)
		}
		return total, nil
	})
	if err != nil && t != nil {
		t.Fatal(err)
	}
	return wf
}

// crashChild runs the five-step workflow's workers and SIGKILLs its own
// process right after the checkpoint of step DURABLE_CRASH_KILL_AFTER.
func crashChild() int {
	ctx := context.Background()
	killAfter, err := strconv.Atoi(os.Getenv(envCrashKillAfter))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad kill point:", err)
		return 2
	}
	app, err := pgxpool.New(ctx, os.Getenv(envCrashAppURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	system, err := pgxpool.New(ctx, os.Getenv(envCrashSystemURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Connect first: a new connection's authentication must not eat into
	// the short lease on a busy machine.
	for _, pool := range []*pgxpool.Pool{app, system} {
		if err := pool.Ping(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	rt, err := durable.New(durable.Config{App: app, System: system, Lease: 2 * time.Second, Heartbeat: 200 * time.Millisecond,
		PollInterval: 10 * time.Millisecond, WorkerID: "doomed"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	registerFive(nil, rt, system, func(k int) {
		if k == killAfter {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // never reached: SIGKILL cannot be caught
		}
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = rt.Run(ctx)
	fmt.Fprintln(os.Stderr, "the child was never killed")
	return 3
}

// A process running a five-step workflow is killed with SIGKILL right
// after step k's checkpoint, for every k. Another runtime takes the run
// over once the dead one's lease expired, does not run steps 1..k again,
// and completes it with the right output.
func TestKilledRunResumesFromLastCheckpoint(t *testing.T) {
	t.Parallel()
	for k := 0; k <= 5; k++ {
		t.Run(fmt.Sprintf("after_step_%d", k), func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			createEffects(t, db)
			// Only the child's lease is short: the survivor takes over within
			// two seconds of the kill.
			rt := newRuntime(t, db, func(c *durable.Config) { c.WorkerID = "survivor" })
			wf := registerFive(t, rt, db.System, nil)
			run, err := wf.Start(ctxA, 1000, durable.WithRunID(fmt.Sprintf("crash-%d", k)))
			require.NoError(t, err)

			runCrashChild(t, db, k)

			// The child died owning the run, with exactly steps 1..k done.
			dead, err := rt.Get(ctxA, run.ID)
			require.NoError(t, err)
			require.Equal(t, durable.StatusRunning, dead.Status)
			require.Equal(t, "doomed", dead.Owner)
			require.Equal(t, wantEffects(1, k), effects(t, db, run.ID))
			steps, err := rt.Steps(ctxA, run.ID)
			require.NoError(t, err)
			require.Len(t, steps, k)

			work(t, rt)
			done := waitRun(t, rt, tenantA, run.ID)
			require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
			require.JSONEq(t, "1055", string(done.Output)) // 1000 + 1 + 4 + 9 + 16 + 25
			require.Equal(t, int64(2), done.Attempt, "claimed by the child, then by the survivor")
			require.Equal(t, wantEffects(1, 5), effects(t, db, run.ID), "every step's effect exactly once")
		})
	}
}

func wantEffects(from, to int) map[string]int {
	want := map[string]int{}
	for i := from; i <= to; i++ {
		want[fmt.Sprintf("s%d", i)] = 1
	}
	return want
}

// runCrashChild runs the child process to its SIGKILL.
func runCrashChild(t *testing.T, db *pgtest.DB, killAfter int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		envCrashAppURL+"="+db.URL(pgtest.RoleApp),
		envCrashSystemURL+"="+db.URL(pgtest.RoleSystem),
		envCrashKillAfter+"="+strconv.Itoa(killAfter),
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child must die, output:\n%s", out)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "killed by SIGKILL, output:\n%s", out)
}
