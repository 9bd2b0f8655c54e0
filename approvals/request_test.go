package approvals_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

func countRequests(t testing.TB, b *bundle) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Admin.QueryRow(context.Background(),
		"SELECT count(*) FROM platform.approvals_requests").Scan(&n))
	return n
}

func TestRequestAllowedStoresNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	a := riskyAction(1)
	a.Recipients = 50
	res, err := b.svc.Request(tenantCtx(t, tenantA), a)
	require.NoError(t, err)
	require.True(t, res.Allowed)
	require.Nil(t, res.Request)
	require.Empty(t, res.Evaluation.Reasons)
	require.Zero(t, countRequests(t, b))
}

func TestRequestStoresPendingRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	a := riskyAction(7)
	a.Critical = true
	res, err := b.svc.Request(tenantCtx(t, tenantA), a)
	require.NoError(t, err)
	require.False(t, res.Allowed)
	require.True(t, res.Created)
	req := res.Request
	require.Equal(t, approvals.StatusPending, req.Status)
	require.Equal(t, tenantA, req.TenantID)
	require.Equal(t, "alice", req.RequestedBy)
	require.Equal(t, "outbound.email", req.Kind)
	require.Equal(t, []approvals.Reason{approvals.ReasonRecipients, approvals.ReasonCritical}, req.Reasons)
	require.JSONEq(t, `{"campaign": 7}`, string(req.Payload))
	require.Equal(t, a.Fingerprint(), req.Fingerprint)
	require.Equal(t, time.Hour, req.ExpiresAt.Sub(req.CreatedAt))
	require.Nil(t, req.DecidedAt)

	got, err := b.svc.Get(tenantCtx(t, tenantA), req.ID)
	require.NoError(t, err)
	require.Equal(t, *req, got)
}

func TestRequestTwiceReturnsSameRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	first := b.newPending(t, 1)

	again := riskyAction(1)
	again.Payload = json.RawMessage(" {\"campaign\" :\n1} ")
	res, err := b.svc.Request(ctx, again)
	require.NoError(t, err)
	require.False(t, res.Created)
	require.Equal(t, first.ID, res.Request.ID)

	other, err := b.svc.Request(ctx, riskyAction(2))
	require.NoError(t, err)
	require.True(t, other.Created)
	require.NotEqual(t, first.ID, other.Request.ID)

	keyed := riskyAction(3)
	keyed.IdempotencyKey = "send-42"
	res1, err := b.svc.Request(ctx, keyed)
	require.NoError(t, err)
	res2, err := b.svc.Request(ctx, keyed)
	require.NoError(t, err)
	require.True(t, res1.Created)
	require.False(t, res2.Created)
	require.Equal(t, res1.Request.ID, res2.Request.ID)
	require.Equal(t, "send-42", res2.Request.IdempotencyKey)

	reused := riskyAction(4)
	reused.IdempotencyKey = "send-42"
	_, err = b.svc.Request(ctx, reused)
	require.ErrorIs(t, err, approvals.ErrIdempotencyKeyReused)
	require.Equal(t, 3, countRequests(t, b))
}

func TestRequestConcurrentAsksStoreOneRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	const n = 20
	ids := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := b.svc.Request(ctx, riskyAction(1))
			if err != nil {
				errs <- err
				return
			}
			ids <- res.Request.ID
		}()
	}
	seen := map[string]int{}
	for range n {
		select {
		case err := <-errs:
			t.Fatal(err)
		case id := <-ids:
			seen[id]++
		}
	}
	require.Len(t, seen, 1)
	require.Equal(t, 1, countRequests(t, b))
}

func TestRequestTakesTenantAndActorFromContext(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	a := riskyAction(1)
	a.Actor = ""
	res, err := b.svc.Request(principalCtx(t, tenantB, "bob"), a)
	require.NoError(t, err)
	require.Equal(t, tenantB, res.Request.TenantID)
	require.Equal(t, "bob", res.Request.RequestedBy)

	_, err = b.svc.Request(context.Background(), a)
	require.ErrorIs(t, err, approvals.ErrNoTenant)
	_, err = b.svc.Request(tenantCtx(t, tenantA), a)
	require.ErrorIs(t, err, approvals.ErrNoActor)

	// System work names the tenant.
	a.Actor = "worker"
	res, err = b.svc.RequestForTenant(context.Background(), tenantA, a)
	require.NoError(t, err)
	require.Equal(t, tenantA, res.Request.TenantID)
	_, err = b.svc.RequestForTenant(context.Background(), "not-a-uuid", a)
	require.ErrorIs(t, err, approvals.ErrInvalidTenant)
	_, err = b.svc.RequestForTenant(context.Background(), "", a)
	require.ErrorIs(t, err, approvals.ErrNoTenant)
	require.Equal(t, 2, countRequests(t, b))
}

func TestRequestRefusesOversizedPayload(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{MaxPayloadBytes: 32})
	a := riskyAction(1)
	a.Payload = json.RawMessage(`{"body":"` + strings.Repeat("x", 32) + `"}`)
	_, err := b.svc.Request(tenantCtx(t, tenantA), a)
	require.ErrorIs(t, err, approvals.ErrInvalidAction)
	require.Zero(t, countRequests(t, b))
}

func TestRequestTxCommitsWithTheCaller(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := tenantCtx(t, tenantA)

	var id string
	err := tenancy.InTx(ctx, b.db.App, func(tx pgx.Tx) error {
		res, err := b.svc.RequestTx(ctx, tx, riskyAction(1))
		require.NoError(t, err)
		id = res.Request.ID
		return context.Canceled // the caller's own work failed: roll back
	})
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.svc.Get(ctx, id)
	require.ErrorIs(t, err, approvals.ErrNotFound, "rolled back with the caller")

	// A context without a tenant takes the transaction's.
	err = tenancy.InTxForTenant(context.Background(), b.db.App, tenantA, func(tx pgx.Tx) error {
		res, err := b.svc.RequestTx(context.Background(), tx, riskyAction(1))
		if err != nil {
			return err
		}
		id = res.Request.ID
		// The times are the database's: the transaction's now().
		var now time.Time
		require.NoError(t, tx.QueryRow(ctx, "SELECT now()").Scan(&now))
		require.Equal(t, now.UTC(), res.Request.CreatedAt)
		require.Equal(t, now.UTC().Add(time.Hour), res.Request.ExpiresAt)
		return nil
	})
	require.NoError(t, err)
	got, err := b.svc.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Equal(t, tenantA, got.TenantID)
}

// txScope reads the tenant tx is scoped to.
func txScope(t testing.TB, tx pgx.Tx) string {
	t.Helper()
	var scope string
	require.NoError(t, tx.QueryRow(context.Background(), "SELECT current_setting('app.tenant_id', true)").Scan(&scope))
	return scope
}

// A …Tx never re-scopes the caller's transaction: a context naming another
// tenant is refused with the typed error, nothing is written, and the
// transaction is still scoped to its own tenant afterwards; an unscoped
// transaction is refused with ErrNoTenant.
func TestTxMethodsNeverRescopeTheCallersTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	req := b.newPending(t, 1)
	ctxB := principalCtx(t, tenantB, "mallory")
	calls := map[string]func(ctx context.Context, tx pgx.Tx) error{
		"RequestTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := b.svc.RequestTx(ctx, tx, riskyAction(2))
			return err
		},
		"DecideTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
			return err
		},
	}
	for name, call := range calls {
		err := tenancy.InTxForTenant(context.Background(), b.db.App, tenantA, func(tx pgx.Tx) error {
			err := call(ctxB, tx)
			var mismatch *tenancy.TenantMismatchError
			require.ErrorAs(t, err, &mismatch, name)
			require.ErrorIs(t, err, approvals.ErrTenantMismatch, name)
			require.ErrorIs(t, err, tenancy.ErrTenantMismatch, name)
			require.Equal(t, tenantB, mismatch.Context)
			require.Equal(t, tenantA, mismatch.Transaction)
			require.Equal(t, tenantA, txScope(t, tx), "%s: the caller's transaction keeps its tenant", name)
			// The transaction is still usable, in its own tenant.
			var n int
			require.NoError(t, tx.QueryRow(context.Background(), "SELECT count(*) FROM platform.approvals_requests").Scan(&n))
			require.Equal(t, 1, n)
			return nil
		})
		require.NoError(t, err)

		err = pgx.BeginFunc(context.Background(), b.db.App, func(tx pgx.Tx) error {
			return call(tenantCtx(t, tenantA), tx)
		})
		require.ErrorIs(t, err, approvals.ErrNoTenant, "%s: an unscoped transaction", name)
	}
	require.Equal(t, 1, countRequests(t, b), "nothing was written")
	got, err := b.svc.Get(tenantCtx(t, tenantA), req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Empty(t, b.auditTrail(t, req.ID))
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))

	// A matching context is fine, and the scope is unchanged after success.
	err = tenancy.InTxForTenant(context.Background(), b.db.App, tenantA, func(tx pgx.Tx) error {
		for name, call := range calls {
			require.NoError(t, call(tenantCtx(t, tenantA), tx), name)
			require.Equal(t, tenantA, txScope(t, tx), name)
		}
		return nil
	})
	require.NoError(t, err)
}

// Every entry point of the request path needs a tenant in its context,
// and every …ForTenant one an explicit tenant: without one, the shared
// ErrNoTenant, before any database work.
func TestNoTenantIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	req := b.newPending(t, 1)
	ctx := context.Background() // no tenant at all
	in := decideInput(req.ID, approvals.StatusApproved, "sami")
	calls := map[string]func() error{
		"Request": func() error { _, err := b.svc.Request(ctx, riskyAction(2)); return err },
		"Decide":  func() error { _, err := b.svc.Decide(ctx, in); return err },
		"Get":     func() error { _, err := b.svc.Get(ctx, req.ID); return err },
		"List":    func() error { _, err := b.svc.List(ctx, approvals.ListOptions{}); return err },
		"AuditTrail": func() error {
			_, err := b.svc.AuditTrail(ctx, req.ID)
			return err
		},
		"RequestForTenant": func() error { _, err := b.svc.RequestForTenant(ctx, "", riskyAction(2)); return err },
		"DecideForTenant":  func() error { _, err := b.svc.DecideForTenant(ctx, "", in); return err },
		"GetForTenant":     func() error { _, err := b.svc.GetForTenant(ctx, "", req.ID); return err },
		"ListForTenant": func() error {
			_, err := b.svc.ListForTenant(ctx, "", approvals.ListOptions{})
			return err
		},
		"AuditTrailForTenant": func() error { _, err := b.svc.AuditTrailForTenant(ctx, "", req.ID); return err },
	}
	for name, call := range calls {
		err := call()
		require.ErrorIs(t, err, approvals.ErrNoTenant, name)
		require.ErrorIs(t, err, tenancy.ErrNoTenant, name)
	}
	require.Equal(t, 1, countRequests(t, b))
	require.Empty(t, b.auditTrail(t, req.ID))
}

func TestRequestAfterExpiryOpensANewRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := tenantCtx(t, tenantA)
	first := b.newPending(t, 1)

	b.age(t, time.Hour)
	res, err := b.svc.Request(ctx, riskyAction(1))
	require.NoError(t, err)
	require.True(t, res.Created)
	require.NotEqual(t, first.ID, res.Request.ID)

	old, err := b.svc.Get(ctx, first.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusExpired, old.Status)
	trail := b.auditTrail(t, first.ID)
	require.Len(t, trail, 1)
	require.Equal(t, "expire", trail[0].Action)
	require.Equal(t, approvals.SystemActor, trail[0].Actor)
}

func TestTenantsCannotSeeEachOthersRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	_, err := b.svc.GetForTenant(ctx, tenantB, req.ID)
	require.ErrorIs(t, err, approvals.ErrNotFound)
	page, err := b.svc.ListForTenant(ctx, tenantB, approvals.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, page.Requests)
	_, err = b.svc.DecideForTenant(ctx, tenantB, approvals.DecideInput{RequestID: req.ID,
		Decision: approvals.StatusApproved, Decider: "mallory"})
	require.ErrorIs(t, err, approvals.ErrNotFound)
	_, err = b.svc.AuditTrailForTenant(ctx, tenantB, req.ID)
	require.ErrorIs(t, err, approvals.ErrNotFound)

	got, err := b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status, "the other tenant's attempt changed nothing")
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
	require.Empty(t, b.auditTrail(t, req.ID), "tenant A's trail holds only tenant A's attempts")

	// Row-level security itself: the app role sees no row without a tenant,
	// and cannot write a row for another tenant than its own.
	var n int
	require.NoError(t, b.db.App.QueryRow(ctx, "SELECT count(*) FROM platform.approvals_requests").Scan(&n))
	require.Zero(t, n)
	err = rls.InTx(ctx, b.db.App, tenantB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE platform.approvals_requests SET status = 'approved',
			decided_by = 'mallory', decided_at = now() WHERE id = $1`, req.ID)
		return err
	})
	require.NoError(t, err)
	got, err = b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	err = rls.InTx(ctx, b.db.App, tenantB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO platform.approvals_audit
			(tenant_id, request_id, actor, action, result, status_after, recorded_at)
			VALUES ($1, $2, 'mallory', 'approve', 'accepted', 'approved', now())`, tenantA, req.ID)
		return err
	})
	require.ErrorContains(t, err, "row-level security")
}
