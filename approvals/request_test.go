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
	res, err := b.svc.Request(context.Background(), a)
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
	res, err := b.svc.Request(context.Background(), a)
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
	require.Equal(t, b.clock.Now(), req.CreatedAt)
	require.Equal(t, b.clock.Now().Add(time.Hour), req.ExpiresAt)
	require.Nil(t, req.DecidedAt)

	got, err := b.svc.Get(context.Background(), tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, *req, got)
}

func TestRequestTwiceReturnsSameRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
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
	const n = 20
	ids := make(chan string, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			res, err := b.svc.Request(context.Background(), riskyAction(1))
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
	a.TenantID, a.Actor = "", ""
	res, err := b.svc.Request(principalCtx(t, tenantB, "bob"), a)
	require.NoError(t, err)
	require.Equal(t, tenantB, res.Request.TenantID)
	require.Equal(t, "bob", res.Request.RequestedBy)

	_, err = b.svc.Request(context.Background(), a)
	require.ErrorIs(t, err, approvals.ErrNoTenant)
	a.TenantID = tenantA
	_, err = b.svc.Request(context.Background(), a)
	require.ErrorIs(t, err, approvals.ErrNoActor)
	a.TenantID, a.Actor = "not-a-uuid", "bob"
	_, err = b.svc.Request(context.Background(), a)
	require.ErrorIs(t, err, approvals.ErrInvalidTenant)
	require.Equal(t, 1, countRequests(t, b))
}

func TestRequestRefusesOversizedPayload(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{MaxPayloadBytes: 32})
	a := riskyAction(1)
	a.Payload = json.RawMessage(`{"body":"` + strings.Repeat("x", 32) + `"}`)
	_, err := b.svc.Request(context.Background(), a)
	require.ErrorIs(t, err, approvals.ErrInvalidAction)
	require.Zero(t, countRequests(t, b))
}

func TestRequestTxCommitsWithTheCaller(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()

	var id string
	err := pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		res, err := b.svc.RequestTx(ctx, tx, riskyAction(1))
		require.NoError(t, err)
		id = res.Request.ID
		return context.Canceled // the caller's own work failed: roll back
	})
	require.ErrorIs(t, err, context.Canceled)
	_, err = b.svc.Get(ctx, tenantA, id)
	require.ErrorIs(t, err, approvals.ErrNotFound, "rolled back with the caller")

	err = pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		res, err := b.svc.RequestTx(ctx, tx, riskyAction(1))
		id = res.Request.ID
		return err
	})
	require.NoError(t, err)
	got, err := b.svc.Get(ctx, tenantA, id)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
}

func TestRequestAfterExpiryOpensANewRequest(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := context.Background()
	first := b.newPending(t, 1)

	b.clock.Advance(time.Hour)
	res, err := b.svc.Request(ctx, riskyAction(1))
	require.NoError(t, err)
	require.True(t, res.Created)
	require.NotEqual(t, first.ID, res.Request.ID)

	old, err := b.svc.Get(ctx, tenantA, first.ID)
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
	ctx := context.Background()
	req := b.newPending(t, 1)

	_, err := b.svc.Get(ctx, tenantB, req.ID)
	require.ErrorIs(t, err, approvals.ErrNotFound)
	page, err := b.svc.List(ctx, tenantB, approvals.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, page.Requests)
	_, err = b.svc.Decide(ctx, approvals.DecideInput{TenantID: tenantB, RequestID: req.ID,
		Decision: approvals.StatusApproved, Decider: "mallory"})
	require.ErrorIs(t, err, approvals.ErrNotFound)
	_, err = b.svc.AuditTrail(ctx, tenantB, req.ID)
	require.ErrorIs(t, err, approvals.ErrNotFound)

	got, err := b.svc.Get(ctx, tenantA, req.ID)
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
	got, err = b.svc.Get(ctx, tenantA, req.ID)
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
