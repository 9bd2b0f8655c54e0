package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

func TestRequestPathCallsTakeTheTenantFromTheContext(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	run, err := wf.Start(ctxA, greeting{Name: "ada"})
	require.NoError(t, err)
	require.Equal(t, tenantA, run.Tenant)

	none := context.Background()
	for name, call := range map[string]func() error{
		"Runtime.Start":   func() error { _, err := rt.Start(none, "greet", greeting{}); return err },
		"Workflow.Start":  func() error { _, err := wf.Start(none, greeting{}); return err },
		"Get":             func() error { _, err := rt.Get(none, run.ID); return err },
		"Steps":           func() error { _, err := rt.Steps(none, run.ID); return err },
		"Wait":            func() error { _, err := rt.Wait(none, run.ID); return err },
		"Workflow.Result": func() error { _, err := wf.Result(none, run.ID); return err },
		"List":            func() error { _, err := rt.List(none, durable.ListOptions{}); return err },
		"Cancel":          func() error { return rt.Cancel(none, run.ID, "") },
		"Signal":          func() error { return rt.Signal(none, run.ID, "go", 1) },
		"Resume":          func() error { return rt.Resume(none, run.ID) },
	} {
		err := call()
		require.ErrorIs(t, err, durable.ErrNoTenant, name)
		require.ErrorIs(t, err, tenancy.ErrNoTenant, "%s: one shared value", name)
	}

	// The context's tenant scopes every call: tenant B does not see A's run.
	_, err = rt.Get(ctxB, run.ID)
	require.ErrorIs(t, err, durable.ErrRunNotFound)
	// The ForTenant variants name the tenant explicitly, whatever the
	// context carries.
	got, err := rt.GetForTenant(ctxB, tenantA, run.ID)
	require.NoError(t, err)
	require.Equal(t, run.ID, got.ID)
	fromTenancy, err := tenancy.WithTenant(context.Background(), tenantA)
	require.NoError(t, err)
	got, err = rt.Get(fromTenancy, run.ID)
	require.NoError(t, err, "tenancy.WithTenant and durable read the same context value")
	require.Equal(t, tenantA, got.Tenant)
	_, err = rt.GetForTenant(none, "not-a-uuid", run.ID)
	require.ErrorIs(t, err, durable.ErrInvalidTenant)
}

func TestTxCallsNeverRescopeTheCallersTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, nil)
	wf := registerGreet(t, rt)
	registerVotes(t, rt, durable.NoTimeout)
	newRun := func() string {
		run, err := rt.Start(ctxA, "votes", 0)
		require.NoError(t, err)
		return run.ID
	}
	scope := func(tx pgx.Tx) string {
		var tenant string
		require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&tenant))
		return tenant
	}
	for name, call := range map[string]func(ctx context.Context, tx pgx.Tx, runID string) error{
		"Runtime.StartTx": func(ctx context.Context, tx pgx.Tx, _ string) error {
			_, err := rt.StartTx(ctx, tx, "greet", greeting{Name: "x"})
			return err
		},
		"Workflow.StartTx": func(ctx context.Context, tx pgx.Tx, _ string) error {
			_, err := wf.StartTx(ctx, tx, greeting{Name: "x"})
			return err
		},
		"SignalTx": func(ctx context.Context, tx pgx.Tx, runID string) error {
			return rt.SignalTx(ctx, tx, runID, "vote", vote{By: "x"})
		},
		"CancelTx": func(ctx context.Context, tx pgx.Tx, runID string) error { return rt.CancelTx(ctx, tx, runID, "") },
	} {
		runID := newRun()
		// A context naming another tenant is refused; the transaction
		// stays scoped to its own tenant and usable.
		require.NoError(t, rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
			err := call(ctxB, tx, runID)
			var mismatch *durable.TenantMismatchError
			require.True(t, errors.As(err, &mismatch), "%s: %v", name, err)
			require.Equal(t, tenantB, mismatch.Context, name)
			require.Equal(t, tenantA, mismatch.Transaction, name)
			require.ErrorIs(t, err, durable.ErrTenantMismatch, name)
			require.ErrorIs(t, err, tenancy.ErrTenantMismatch, name)
			require.Equal(t, tenantA, scope(tx), "%s: still scoped to its own tenant", name)
			// The same tenant, or none in the context, is accepted.
			require.NoError(t, call(ctxA, tx, runID), name)
			require.Equal(t, tenantA, scope(tx), name)
			if name != "CancelTx" && name != "SignalTx" {
				require.NoError(t, call(ctx, tx, runID), name)
			}
			require.Equal(t, tenantA, scope(tx), name)
			return nil
		}))
		// A transaction scoped to no tenant is refused.
		err := pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error { return call(ctxA, tx, runID) })
		require.ErrorIs(t, err, durable.ErrNoTenant, name)
	}
}

// Workflow and step functions see the run's tenant in their context, as a
// request handler sees its caller's, so what they call on the request
// path (here StartTx inside a TxStep) works for that tenant.
func TestStepsSeeTheRunsTenant(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	registerGreet(t, rt)
	_, err := durable.Register(rt, "parent", func(ctx context.Context, in string) (string, error) {
		inStep, err := durable.Step(ctx, "tenant", func(ctx context.Context) (string, error) {
			tenant, _ := tenancy.TenantFrom(ctx)
			return tenant, nil
		})
		if err != nil {
			return "", err
		}
		child, err := durable.TxStep(ctx, "child", func(ctx context.Context, tx pgx.Tx) (string, error) {
			run, err := rt.StartTx(ctx, tx, "greet", greeting{Name: in})
			return run.ID, err
		})
		if err != nil {
			return "", err
		}
		return inStep + " " + child, nil
	})
	require.NoError(t, err)
	work(t, rt)

	run, err := rt.Start(ctxB, "parent", "bob")
	require.NoError(t, err)
	done := waitRun(t, rt, tenantB, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	var out string
	require.NoError(t, json.Unmarshal(done.Output, &out))
	tenant, childID, _ := strings.Cut(out, " ")
	require.Equal(t, tenantB, tenant)
	child := waitRun(t, rt, tenantB, childID)
	require.Equal(t, durable.StatusCompleted, child.Status, child.Error)
	require.JSONEq(t, `"hello BOB"`, string(child.Output))
}
