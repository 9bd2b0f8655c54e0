package approvals_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
)

func auditResults(entries []approvals.AuditEntry) []approvals.AuditResult {
	out := make([]approvals.AuditResult, len(entries))
	for i, e := range entries {
		out[i] = e.Result
	}
	return out
}

func TestApproveRunsContinuationExactlyOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
	req := b.newPending(t, 1)

	in := decideInput(req.ID, approvals.StatusApproved, "sami")
	in.Comment = "looks fine"
	d, err := b.svc.Decide(ctx, in)
	require.NoError(t, err)
	require.False(t, d.Replayed)
	require.Equal(t, approvals.StatusApproved, d.Status)
	require.Equal(t, "sami", d.DecidedBy)
	require.Equal(t, b.clock.Now(), d.DecidedAt)
	require.Equal(t, "looks fine", d.Comment)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
	var kind, payload string
	require.NoError(t, b.db.Admin.QueryRow(ctx, `SELECT kind, payload::text FROM platform.test_continuations
		WHERE request_id = $1`, req.ID).Scan(&kind, &payload))
	require.Equal(t, "outbound.email", kind)
	require.JSONEq(t, string(req.Payload), payload, "the continuation carries the action's payload")

	// A repeat, even by someone else, is an idempotent success: the first
	// decision stands and the continuation is not written again.
	again, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "omar"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, "sami", again.DecidedBy)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))

	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusApproved, got.Status)
	require.Equal(t, "sami", got.DecidedBy)
	require.Equal(t, "looks fine", got.Comment)

	trail := b.auditTrail(t, req.ID)
	require.Equal(t, []approvals.AuditResult{approvals.AuditAccepted, approvals.AuditReplayed}, auditResults(trail))
	require.Equal(t, "sami", trail[0].Actor)
	require.Equal(t, "omar", trail[1].Actor)
	require.Equal(t, "approve", trail[0].Action)
	require.Equal(t, approvals.StatusApproved, trail[1].StatusAfter)
}

// The seed's attack path: after a rejection, a second attempt by someone
// else to approve keeps status=rejected, decided_by=sami.
func TestRejectionStandsAgainstLaterApproval(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
	req := b.newPending(t, 1)

	d, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusRejected, "sami"))
	require.NoError(t, err)
	require.Equal(t, approvals.StatusRejected, d.Status)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID), "a rejection never runs the action")

	_, err = b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "attacker"))
	require.ErrorIs(t, err, approvals.ErrAlreadyDecided)
	var conflict *approvals.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, approvals.StatusApproved, conflict.Attempted)
	require.Equal(t, approvals.StatusRejected, conflict.Recorded.Status)
	require.Equal(t, "sami", conflict.Recorded.DecidedBy)
	require.Equal(t, req.ID, conflict.Recorded.RequestID)

	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusRejected, got.Status)
	require.Equal(t, "sami", got.DecidedBy)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
	trail := b.auditTrail(t, req.ID)
	require.Equal(t, []approvals.AuditResult{approvals.AuditAccepted, approvals.AuditConflict}, auditResults(trail))
	require.Equal(t, "attacker", trail[1].Actor)
	require.Equal(t, approvals.StatusRejected, trail[1].StatusAfter)
}

func TestOnRejectHookRunsOnlyForRejections(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var rejected []string
	b := setup(t, approvals.Config{OnReject: func(_ context.Context, _ pgx.Tx, d approvals.Decision) error {
		mu.Lock()
		defer mu.Unlock()
		rejected = append(rejected, d.RequestID)
		return nil
	}})
	ctx := context.Background()
	r1, r2 := b.newPending(t, 1), b.newPending(t, 2)
	_, err := b.svc.Decide(ctx, decideInput(r1.ID, approvals.StatusRejected, "sami"))
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(r1.ID, approvals.StatusRejected, "sami"))
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(r2.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	require.Equal(t, []string{r1.ID}, rejected)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, r2.ID))
}

func TestHookErrorRollsBackTheDecision(t *testing.T) {
	t.Parallel()
	errQueueFull := errors.New("queue full")
	b := setup(t, approvals.Config{OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		if err := enqueueContinuation(ctx, tx, d); err != nil {
			return err
		}
		return errQueueFull // fails after writing: the write must roll back too
	}})
	ctx := context.Background()
	req := b.newPending(t, 1)

	_, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, errQueueFull)
	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Empty(t, got.DecidedBy)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
	require.Empty(t, b.auditTrail(t, req.ID), "nothing of the failed attempt is kept")

	// Once the continuation can be written, the request can still be approved.
	healthy, err := approvals.New(b.db.App, approvals.Config{Now: b.clock.Now, OnApprove: enqueueContinuation})
	require.NoError(t, err)
	d, err := healthy.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	require.False(t, d.Replayed)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
}

func TestSelfApproval(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
	req := b.newPending(t, 1)

	_, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "alice"))
	require.ErrorIs(t, err, approvals.ErrSelfApproval)
	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
	require.Equal(t, []approvals.AuditResult{approvals.AuditSelfApproval}, auditResults(b.auditTrail(t, req.ID)))

	// The requester may withdraw by rejecting.
	d, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusRejected, "alice"))
	require.NoError(t, err)
	require.Equal(t, approvals.StatusRejected, d.Status)

	// Allowed by configuration.
	lax := setup(t, approvals.Config{AllowSelfApproval: true})
	req = lax.newPending(t, 1)
	d, err = lax.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "alice"))
	require.NoError(t, err)
	require.Equal(t, "alice", d.DecidedBy)
	require.Equal(t, 1, countContinuations(t, lax.db.Admin, req.ID))
}

func TestExpiredRequestCannotBeDecided(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := context.Background()
	early, late := b.newPending(t, 1), b.newPending(t, 2)

	b.clock.Advance(time.Hour - time.Microsecond)
	_, err := b.svc.Decide(ctx, decideInput(early.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err, "one microsecond before expiry is still in time")

	b.clock.Advance(time.Microsecond)
	_, err = b.svc.Decide(ctx, decideInput(late.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired, "at expires_at the request is expired")
	_, err = b.svc.Decide(ctx, decideInput(late.ID, approvals.StatusRejected, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)
	require.Zero(t, countContinuations(t, b.db.Admin, late.ID))
	require.Equal(t, []approvals.AuditResult{approvals.AuditExpired, approvals.AuditExpired},
		auditResults(b.auditTrail(t, late.ID)))
	got, err := b.svc.Get(ctx, tenantA, late.ID)
	require.NoError(t, err)
	require.Empty(t, got.DecidedBy)

	// A decided request keeps its decision after its expiry time.
	again, err := b.svc.Decide(ctx, decideInput(early.ID, approvals.StatusApproved, "omar"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
}

func TestDecideRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
	req := b.newPending(t, 1)

	cases := map[string]struct {
		in   approvals.DecideInput
		want error
	}{
		"bad id":          {decideInput("42", approvals.StatusApproved, "sami"), approvals.ErrInvalidID},
		"braced id":       {decideInput("{"+req.ID+"}", approvals.StatusApproved, "sami"), approvals.ErrInvalidID},
		"pending":         {decideInput(req.ID, approvals.StatusPending, "sami"), approvals.ErrInvalidDecision},
		"unknown":         {decideInput(req.ID, "maybe", "sami"), approvals.ErrInvalidDecision},
		"long comment":    {approvals.DecideInput{TenantID: tenantA, RequestID: req.ID, Decision: approvals.StatusApproved, Decider: "sami", Comment: strings.Repeat("x", approvals.MaxCommentLength+1)}, approvals.ErrInvalidDecision},
		"no decider":      {decideInput(req.ID, approvals.StatusApproved, ""), approvals.ErrNoActor},
		"no tenant":       {approvals.DecideInput{RequestID: req.ID, Decision: approvals.StatusApproved, Decider: "sami"}, approvals.ErrNoTenant},
		"unknown request": {decideInput("99999999-9999-4999-8999-999999999999", approvals.StatusApproved, "sami"), approvals.ErrNotFound},
	}
	for name, tc := range cases {
		_, err := b.svc.Decide(ctx, tc.in)
		require.ErrorIs(t, err, tc.want, name)
	}
	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Empty(t, b.auditTrail(t, req.ID), "invalid input never reaches the trail")

	var notFound int
	require.NoError(t, b.db.Admin.QueryRow(ctx, `SELECT count(*) FROM platform.approvals_audit
		WHERE result = 'not_found' AND request_id = '99999999-9999-4999-8999-999999999999'`).Scan(&notFound))
	require.Equal(t, 1, notFound, "an attempt on an unknown id is audited")
}

func TestDecideTakesTenantAndDeciderFromContext(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	req := b.newPending(t, 1)
	d, err := b.svc.Decide(principalCtx(t, tenantA, "sami"),
		approvals.DecideInput{RequestID: req.ID, Decision: approvals.StatusApproved})
	require.NoError(t, err)
	require.Equal(t, "sami", d.DecidedBy)
	require.Equal(t, tenantA, d.TenantID)
}

func TestDecideTxCommitsWithTheCaller(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := context.Background()
	req := b.newPending(t, 1)

	errLater := errors.New("caller's later write failed")
	err := pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		require.NoError(t, err)
		return errLater
	})
	require.ErrorIs(t, err, errLater)
	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))

	err = pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
}

func TestDecideTxHookErrorLeavesCallerTxUsable(t *testing.T) {
	t.Parallel()
	errHook := errors.New("hook failed")
	b := setup(t, approvals.Config{OnApprove: func(context.Context, pgx.Tx, approvals.Decision) error { return errHook }})
	ctx := context.Background()
	req := b.newPending(t, 1)
	err := pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		require.ErrorIs(t, err, errHook)
		// The savepoint was rolled back; the caller's transaction goes on.
		_, err = b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusRejected, "sami"))
		return err
	})
	require.NoError(t, err)
	got, err := b.svc.Get(ctx, tenantA, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusRejected, got.Status)
	require.Equal(t, []approvals.AuditResult{approvals.AuditAccepted}, auditResults(b.auditTrail(t, req.ID)))
}

// Fifty deciders race, mixing approve and reject: exactly one decision is
// recorded, every answer agrees with it, every attempt is audited, and the
// continuation exists exactly when the winner approved.
func TestConcurrentDecisionsFirstWins(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	const deciders = 50
	for round := range 3 {
		req := b.newPending(t, 100+round)
		type answer struct {
			attempted approvals.Status
			d         approvals.Decision
			err       error
		}
		answers := make([]answer, deciders)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range deciders {
			decision := approvals.StatusApproved
			if i%2 == 1 {
				decision = approvals.StatusRejected
			}
			wg.Go(func() {
				<-start
				d, err := b.svc.Decide(context.Background(),
					decideInput(req.ID, decision, fmt.Sprintf("decider-%d", i)))
				answers[i] = answer{decision, d, err}
			})
		}
		close(start)
		wg.Wait()

		got, err := b.svc.Get(context.Background(), tenantA, req.ID)
		require.NoError(t, err)
		require.Contains(t, []approvals.Status{approvals.StatusApproved, approvals.StatusRejected}, got.Status)
		winners := 0
		for _, a := range answers {
			if a.attempted == got.Status {
				require.NoError(t, a.err)
				require.Equal(t, got.Status, a.d.Status)
				require.Equal(t, got.DecidedBy, a.d.DecidedBy)
				if !a.d.Replayed {
					winners++
				}
				continue
			}
			var conflict *approvals.ConflictError
			require.ErrorAs(t, a.err, &conflict)
			require.Equal(t, got.Status, conflict.Recorded.Status)
			require.Equal(t, got.DecidedBy, conflict.Recorded.DecidedBy)
		}
		require.Equal(t, 1, winners)

		trail := b.auditTrail(t, req.ID)
		require.Len(t, trail, deciders)
		counts := map[approvals.AuditResult]int{}
		for _, e := range trail {
			counts[e.Result]++
		}
		require.Equal(t, 1, counts[approvals.AuditAccepted])
		require.Equal(t, deciders/2-1, counts[approvals.AuditReplayed])
		require.Equal(t, deciders/2, counts[approvals.AuditConflict])

		want := 0
		if got.Status == approvals.StatusApproved {
			want = 1
		}
		require.Equal(t, want, countContinuations(t, b.db.Admin, req.ID))
	}
}
