package approvals_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
)

// Environment of the deciding child process.
const (
	envCrashDB      = "APPROVALS_CRASH_DB_URL"
	envCrashRequest = "APPROVALS_CRASH_REQUEST"
)

// The deciding process approves, commits, and is killed with SIGKILL before
// it can answer. The continuation was committed with the decision; the
// caller's retry (it never got an answer) replays the decision and does not
// write the continuation again.
func TestApprovedActionRunsOnceWhenDeciderDies(t *testing.T) {
	if url := os.Getenv(envCrashDB); url != "" {
		decideThenDie(t, url, os.Getenv(envCrashRequest))
		return
	}
	t.Parallel()
	b := setup(t, approvals.Config{})
	req := b.newPending(t, 1)

	ctx, cancel := context.WithTimeout(tenantCtx(t, tenantA), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestApprovedActionRunsOnceWhenDeciderDies$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envCrashDB+"="+b.db.URL(pgtest.RoleApp),
		envCrashRequest+"="+req.ID,
		// The child needs no server of its own: point it at this one.
		pgtest.EnvDatabaseURL+"="+pgtest.AdminURL(),
	)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child must die, output:\n%s", out)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "killed by SIGKILL, output:\n%s", out)

	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID), "committed with the decision")
	got, err := b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusApproved, got.Status)

	retry, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	require.True(t, retry.Replayed)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID), "the retry does not run it again")
	require.Equal(t, []approvals.AuditResult{approvals.AuditAccepted, approvals.AuditReplayed},
		auditResults(b.auditTrail(t, req.ID)))
}

func decideThenDie(t *testing.T, url, requestID string) {
	ctx := tenantCtx(t, tenantA)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	svc, err := approvals.New(pool, approvals.Config{OnApprove: enqueueContinuation})
	require.NoError(t, err)
	_, err = svc.Decide(ctx, decideInput(requestID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	// Die between the commit and any answer or clean-up.
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGKILL))
	time.Sleep(time.Minute) // never reached: SIGKILL cannot be caught
}
