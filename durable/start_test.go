package durable_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

type greeting struct {
	Name string `json:"name"`
}

func registerGreet(t testing.TB, rt *durable.Runtime) *durable.Workflow[greeting, string] {
	t.Helper()
	wf, err := durable.Register(rt, "greet", func(ctx context.Context, in greeting) (string, error) {
		upper, err := durable.Step(ctx, "upper", func(context.Context) (string, error) { return strings.ToUpper(in.Name), nil })
		if err != nil {
			return "", err
		}
		return durable.Step(ctx, "greet", func(context.Context) (string, error) { return "hello " + upper, nil })
	})
	require.NoError(t, err)
	return wf
}

func TestStartIsIdempotentWithRunID(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	_, err := durable.Register(rt, "other", func(context.Context, int) (int, error) { return 0, nil })
	require.NoError(t, err)

	first, err := wf.Start(ctxA, greeting{Name: "ada"}, durable.WithRunID("order-42"))
	require.NoError(t, err)
	require.Equal(t, durable.StatusPending, first.Status)
	require.Equal(t, tenantA, first.Tenant)
	again, err := wf.Start(ctxA, greeting{Name: "someone else"}, durable.WithRunID("order-42"))
	require.NoError(t, err)
	require.True(t, first.CreatedAt.Equal(again.CreatedAt), "%v, %v", first.CreatedAt, again.CreatedAt)
	require.JSONEq(t, `{"name":"ada"}`, string(again.Input), "the first start's input stays")
	require.Equal(t, 1, countRows(t, db, "durable_runs", "order-42"))

	_, err = rt.Start(ctxA, "other", 1, durable.WithRunID("order-42"))
	require.ErrorIs(t, err, durable.ErrRunIDConflict)

	// The same id in another tenant is another run.
	other, err := wf.Start(ctxB, greeting{Name: "bob"}, durable.WithRunID("order-42"))
	require.NoError(t, err)
	require.Equal(t, tenantB, other.Tenant)
	require.Equal(t, 2, countRows(t, db, "durable_runs", "order-42"))

	// With workers running, a repeated start neither executes nor keeps
	// a worker slot (the workers' shutdown at the test's end waits for
	// every slot).
	work(t, rt)
	done := waitRun(t, rt, tenantA, "order-42")
	require.Equal(t, durable.StatusCompleted, done.Status)
	for range 3 {
		again, err = wf.Start(ctxA, greeting{Name: "ada"}, durable.WithRunID("order-42"))
		require.NoError(t, err)
		require.Equal(t, durable.StatusCompleted, again.Status)
		require.Equal(t, int64(1), again.Attempt)
	}

	// Without an id every start is a new run.
	a, err := wf.Start(ctxA, greeting{Name: "x"})
	require.NoError(t, err)
	b, err := wf.Start(ctxA, greeting{Name: "x"})
	require.NoError(t, err)
	require.NotEqual(t, a.ID, b.ID)
}

func TestStartRefusesBadRequestsAndStoresNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	registerGreet(t, rt)
	_, err := durable.Register(rt, "any", func(context.Context, any) (int, error) { return 0, nil })
	require.NoError(t, err)

	_, err = rt.Start(ctxA, "nope", greeting{})
	require.ErrorIs(t, err, durable.ErrUnknownWorkflow)
	_, err = rt.Start(ctxA, "any", make(chan int))
	require.ErrorIs(t, err, durable.ErrEncode)
	_, err = rt.Start(ctxA, "any", math.Inf(1))
	require.ErrorIs(t, err, durable.ErrEncode)
	for _, id := range []string{strings.Repeat("x", 201), "tab\there", "bad\xff"} {
		_, err = rt.Start(ctxA, "greet", greeting{}, durable.WithRunID(id))
		require.ErrorIs(t, err, durable.ErrInvalidRunID, "%q", id)
	}
	_, err = rt.StartForTenant(ctx, "not-a-tenant", "greet", greeting{})
	require.ErrorIs(t, err, rls.ErrInvalidTenant)

	// A transaction without a tenant cannot start a run.
	err = pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
		_, err := rt.StartTx(ctx, tx, "greet", greeting{})
		return err
	})
	require.ErrorIs(t, err, durable.ErrNoTenant)

	_, err = durable.Register(rt, "greet", func(context.Context, int) (int, error) { return 0, nil })
	require.ErrorIs(t, err, durable.ErrDuplicateWorkflow)
	_, err = durable.Register(rt, " ", func(context.Context, int) (int, error) { return 0, nil })
	require.ErrorIs(t, err, durable.ErrInvalidName)

	var n int
	require.NoError(t, db.Admin.QueryRow(ctx, "SELECT count(*) FROM platform.durable_runs").Scan(&n))
	require.Zero(t, n)
}

func TestStartTxCommitsWithTheCallersTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)

	err := rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		_, err := wf.StartTx(ctx, tx, greeting{Name: "gone"}, durable.WithRunID("rolled-back"))
		require.NoError(t, err)
		return errRollback
	})
	require.ErrorIs(t, err, errRollback)
	require.Zero(t, countRows(t, db, "durable_runs", "rolled-back"))

	require.NoError(t, rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		_, err := wf.StartTx(ctx, tx, greeting{Name: "kept"}, durable.WithRunID("committed"))
		return err
	}))
	work(t, rt)
	out, err := wf.Result(ctxA, "committed")
	require.NoError(t, err)
	require.Equal(t, "hello KEPT", out)
}

var errRollback = errorString("roll back")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestRunsAreTenantScoped(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	run, err := wf.Start(ctxA, greeting{Name: "ada"})
	require.NoError(t, err)

	_, err = rt.Get(ctxB, run.ID)
	require.ErrorIs(t, err, durable.ErrRunNotFound)
	require.ErrorIs(t, rt.Signal(ctxB, run.ID, "go", 1), durable.ErrRunNotFound)
	require.ErrorIs(t, rt.Cancel(ctxB, run.ID, ""), durable.ErrRunNotFound)
	page, err := rt.List(ctxB, durable.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, page.Runs)

	// The app role sees nothing without a tenant.
	var n int
	require.NoError(t, db.App.QueryRow(ctx, "SELECT count(*) FROM platform.durable_runs").Scan(&n))
	require.Zero(t, n)
}

func TestStepsAreRecordedAndTheRunCompletes(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	work(t, rt)

	run, err := wf.Start(ctxA, greeting{Name: "ada"})
	require.NoError(t, err)
	out, err := wf.Result(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, "hello ADA", out)

	done, err := rt.Get(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, durable.StatusCompleted, done.Status)
	require.False(t, done.FinishedAt.IsZero())
	require.Empty(t, done.Owner)
	steps, err := rt.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Len(t, steps, 2)
	require.Equal(t, []string{"upper", "greet"}, []string{steps[0].Name, steps[1].Name})
	require.Equal(t, []int{1, 2}, []int{steps[0].Seq, steps[1].Seq})
	require.JSONEq(t, `"ADA"`, string(steps[0].Output))
	require.JSONEq(t, `"hello ADA"`, string(steps[1].Output))
}

func TestStepOutsideAWorkflowIsRefused(t *testing.T) {
	t.Parallel()
	_, err := durable.Step(context.Background(), "x", func(context.Context) (int, error) { return 1, nil })
	require.ErrorIs(t, err, durable.ErrNotInWorkflow)
	require.ErrorIs(t, durable.Sleep(context.Background(), 0), durable.ErrNotInWorkflow)
	_, err = durable.WaitSignal[int](context.Background(), "x", 0)
	require.ErrorIs(t, err, durable.ErrNotInWorkflow)
	_, ok := durable.CurrentRun(context.Background())
	require.False(t, ok)
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	for name, cfg := range map[string]durable.Config{
		"no app pool":        {},
		"short lease":        {App: db.App, Lease: 50e6},
		"heartbeat >= lease": {App: db.App, Lease: 1e9, Heartbeat: 1e9},
		"negative poll":      {App: db.App, PollInterval: -1},
		"negative workers":   {App: db.App, Concurrency: -1},
		"NUL in worker id":   {App: db.App, WorkerID: "w\x00"},
	} {
		_, err := durable.New(cfg)
		require.ErrorIs(t, err, durable.ErrInvalidConfig, name)
	}
	rt, err := durable.New(durable.Config{App: db.App})
	require.NoError(t, err)
	require.ErrorIs(t, rt.Run(context.Background()), durable.ErrNoSystemPool)
}
