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
	"github.com/dealix/platform/tenancy"
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
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	in := decideInput(req.ID, approvals.StatusApproved, "sami")
	in.Comment = "looks fine"
	d, err := b.svc.Decide(ctx, in)
	require.NoError(t, err)
	require.False(t, d.Replayed)
	require.Equal(t, approvals.StatusApproved, d.Status)
	require.Equal(t, "sami", d.DecidedBy)
	require.False(t, d.DecidedAt.Before(req.CreatedAt))
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

	got, err := b.svc.Get(ctx, req.ID)
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
	require.Equal(t, d.DecidedAt, trail[0].RecordedAt, "one transaction, one database clock reading")
}

// The seed's attack path: after a rejection, a second attempt by someone
// else to approve keeps status=rejected, decided_by=sami.
func TestRejectionStandsAgainstLaterApproval(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
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

	got, err := b.svc.Get(ctx, req.ID)
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
	ctx := tenantCtx(t, tenantA)
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

func TestHookErrorRollsBackTheDecisionButKeepsTheAttempt(t *testing.T) {
	t.Parallel()
	errQueueFull := errors.New("queue full\x00")
	b := setup(t, approvals.Config{OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		if err := enqueueContinuation(ctx, tx, d); err != nil {
			return err
		}
		return errQueueFull // fails after writing: the write must roll back too
	}})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	in := decideInput(req.ID, approvals.StatusApproved, "sami")
	in.Comment = "go"
	_, err := b.svc.Decide(ctx, in)
	require.ErrorIs(t, err, errQueueFull)
	got, err := b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Empty(t, got.DecidedBy)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
	trail := b.auditTrail(t, req.ID)
	require.Equal(t, []approvals.AuditResult{approvals.AuditHookFailed}, auditResults(trail),
		"the failed attempt is recorded though its decision was rolled back")
	require.Equal(t, "sami", trail[0].Actor)
	require.Equal(t, "approve", trail[0].Action)
	require.Equal(t, "go", trail[0].Comment)
	require.Equal(t, approvals.StatusPending, trail[0].StatusAfter)
	require.Contains(t, trail[0].Error, "queue full\uFFFD", "the hook's error, made storable")

	// A hook that fails because the caller gave up is recorded too.
	cancelled, cancel := context.WithCancel(ctx)
	stalled := setup(t, approvals.Config{OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		cancel()
		return ctx.Err()
	}})
	other := stalled.newPending(t, 2)
	_, err = stalled.svc.Decide(cancelled, decideInput(other.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []approvals.AuditResult{approvals.AuditHookFailed}, auditResults(stalled.auditTrail(t, other.ID)))

	// A hook whose statement failed left the transaction aborted: the
	// savepoint recovers it, and the attempt is recorded all the same.
	broken := setup(t, approvals.Config{OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		_, err := tx.Exec(ctx, "INSERT INTO platform.no_such_outbox VALUES (1)")
		return err
	}})
	third := broken.newPending(t, 3)
	_, err = broken.svc.Decide(ctx, decideInput(third.ID, approvals.StatusApproved, "sami"))
	require.ErrorContains(t, err, "no_such_outbox")
	trail = broken.auditTrail(t, third.ID)
	require.Equal(t, []approvals.AuditResult{approvals.AuditHookFailed}, auditResults(trail))
	require.Contains(t, trail[0].Error, "no_such_outbox")

	// Once the continuation can be written, the request can still be approved.
	healthy, err := approvals.New(b.db.App, approvals.Config{OnApprove: enqueueContinuation})
	require.NoError(t, err)
	d, err := healthy.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	require.False(t, d.Replayed)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
	require.Equal(t, []approvals.AuditResult{approvals.AuditHookFailed, approvals.AuditAccepted},
		auditResults(b.auditTrail(t, req.ID)))
}

// Deciders race while the hook fails for some of them: a failed attempt
// never blocks the request, exactly one decision is recorded, its
// winner's hook writes are the only ones kept, and every attempt,
// failed ones included, is in the trail.
func TestHookFailuresKeepFirstDecisionWins(t *testing.T) {
	t.Parallel()
	errFlaky := errors.New("flaky outbox")
	failFor := func(decider string) bool { return strings.HasSuffix(decider, "-0") || strings.HasSuffix(decider, "-3") }
	hook := func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		if failFor(d.DecidedBy) {
			return errFlaky
		}
		return enqueueContinuation(ctx, tx, d)
	}
	b := setup(t, approvals.Config{OnApprove: hook, OnReject: hook})
	ctx := tenantCtx(t, tenantA)
	const deciders = 20
	for round := range 3 {
		req := b.newPending(t, 200+round)
		errs := make([]error, deciders)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range deciders {
			decision := approvals.StatusApproved
			if i%2 == 1 {
				decision = approvals.StatusRejected
			}
			wg.Go(func() {
				<-start
				_, errs[i] = b.svc.Decide(ctx, decideInput(req.ID, decision, fmt.Sprintf("decider-%d", i)))
			})
		}
		close(start)
		wg.Wait()

		got, err := b.svc.Get(ctx, req.ID)
		require.NoError(t, err)
		require.NotEqual(t, approvals.StatusPending, got.Status, "some decider without a failing hook won")
		require.False(t, failFor(got.DecidedBy), "a failed hook's decision never stands")
		trail := b.auditTrail(t, req.ID)
		require.Len(t, trail, deciders, "every attempt is recorded")
		counts := map[approvals.AuditResult]int{}
		for _, e := range trail {
			counts[e.Result]++
			if e.Result == approvals.AuditHookFailed {
				require.True(t, failFor(e.Actor))
				require.Contains(t, e.Error, "flaky outbox")
			}
		}
		require.Equal(t, 1, counts[approvals.AuditAccepted])
		for i, err := range errs {
			if err != nil && errors.Is(err, errFlaky) {
				require.True(t, failFor(fmt.Sprintf("decider-%d", i)))
			}
		}
		// Both hooks write the continuation: only the winner's is kept.
		require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
	}
}

func TestSelfApproval(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	_, err := b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "alice"))
	require.ErrorIs(t, err, approvals.ErrSelfApproval)
	got, err := b.svc.Get(ctx, req.ID)
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
	ctx := tenantCtx(t, tenantA)
	early, late := b.newPending(t, 1), b.newPending(t, 2)
	require.Equal(t, time.Hour, early.ExpiresAt.Sub(early.CreatedAt))

	// The boundary, on the database's clock: a decision whose transaction
	// reads now() = expires_at - 1µs is in time, one reading expires_at is
	// not.
	setExpiry := func(tx pgx.Tx, id, offset string) {
		_, err := tx.Exec(ctx, `UPDATE platform.approvals_requests
			SET expires_at = now() + $2::interval WHERE id = $1`, id, offset)
		require.NoError(t, err)
	}
	require.NoError(t, tenancy.InTx(ctx, b.db.App, func(tx pgx.Tx) error {
		setExpiry(tx, early.ID, "1 microsecond")
		_, err := b.svc.DecideTx(ctx, tx, decideInput(early.ID, approvals.StatusApproved, "sami"))
		return err
	}), "one microsecond before expiry is still in time")
	require.NoError(t, tenancy.InTx(ctx, b.db.App, func(tx pgx.Tx) error {
		setExpiry(tx, late.ID, "0")
		_, err := b.svc.DecideTx(ctx, tx, decideInput(late.ID, approvals.StatusApproved, "sami"))
		require.ErrorIs(t, err, approvals.ErrExpired, "at expires_at the request is expired")
		return nil
	}))
	_, err := b.svc.Decide(ctx, decideInput(late.ID, approvals.StatusRejected, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)
	require.Zero(t, countContinuations(t, b.db.Admin, late.ID))
	require.Equal(t, []approvals.AuditResult{approvals.AuditExpired, approvals.AuditExpired},
		auditResults(b.auditTrail(t, late.ID)))
	got, err := b.svc.Get(ctx, late.ID)
	require.NoError(t, err)
	require.Empty(t, got.DecidedBy)

	// A decided request keeps its decision after its expiry time.
	b.age(t, 2*time.Hour)
	again, err := b.svc.Decide(ctx, decideInput(early.ID, approvals.StatusApproved, "omar"))
	require.NoError(t, err)
	require.True(t, again.Replayed)
}

func TestDecideRefusesBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	cases := map[string]struct {
		in   approvals.DecideInput
		want error
	}{
		"bad id":          {decideInput("42", approvals.StatusApproved, "sami"), approvals.ErrInvalidID},
		"braced id":       {decideInput("{"+req.ID+"}", approvals.StatusApproved, "sami"), approvals.ErrInvalidID},
		"pending":         {decideInput(req.ID, approvals.StatusPending, "sami"), approvals.ErrInvalidDecision},
		"unknown":         {decideInput(req.ID, "maybe", "sami"), approvals.ErrInvalidDecision},
		"long comment":    {approvals.DecideInput{RequestID: req.ID, Decision: approvals.StatusApproved, Decider: "sami", Comment: strings.Repeat("x", approvals.MaxCommentLength+1)}, approvals.ErrInvalidDecision},
		"NUL in comment":  {approvals.DecideInput{RequestID: req.ID, Decision: approvals.StatusApproved, Decider: "sami", Comment: "a\x00b"}, approvals.ErrInvalidDecision},
		"no decider":      {decideInput(req.ID, approvals.StatusApproved, ""), approvals.ErrNoActor},
		"unknown request": {decideInput("99999999-9999-4999-8999-999999999999", approvals.StatusApproved, "sami"), approvals.ErrNotFound},
	}
	for name, tc := range cases {
		_, err := b.svc.Decide(ctx, tc.in)
		require.ErrorIs(t, err, tc.want, name)
	}
	got, err := b.svc.Get(ctx, req.ID)
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

	// System work names the tenant; its hook still gets a context that
	// carries it (enqueueContinuation checks).
	other := b.newPending(t, 2)
	_, err = b.svc.Decide(context.Background(), decideInput(other.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrNoTenant)
	d, err = b.svc.DecideForTenant(context.Background(), tenantA, decideInput(other.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	require.Equal(t, tenantA, d.TenantID)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, other.ID))
}

func TestDecideTxCommitsWithTheCaller(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)

	errLater := errors.New("caller's later write failed")
	err := tenancy.InTx(ctx, b.db.App, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		require.NoError(t, err)
		return errLater
	})
	require.ErrorIs(t, err, errLater)
	got, err := b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)
	require.Zero(t, countContinuations(t, b.db.Admin, req.ID))

	// A transaction scoped by the caller, and a context without a tenant
	// (system work): the hook still gets a context carrying the tenant.
	err = tenancy.InTxForTenant(context.Background(), b.db.App, tenantA, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(context.Background(), tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
}

func TestDecideTxHookErrorLeavesCallerTxUsable(t *testing.T) {
	t.Parallel()
	errHook := errors.New("hook failed")
	b := setup(t, approvals.Config{OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
		// A failed statement aborts the transaction; the savepoint must
		// bring the caller's back.
		_, err := tx.Exec(ctx, "SELECT 1 / 0")
		return errors.Join(errHook, err)
	}})
	ctx := tenantCtx(t, tenantA)
	req := b.newPending(t, 1)
	err := tenancy.InTx(ctx, b.db.App, func(tx pgx.Tx) error {
		_, err := b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		require.ErrorIs(t, err, errHook)
		// The savepoint was rolled back; the caller's transaction goes on,
		// still scoped to its tenant and with no savepoint left open.
		var scope string
		require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id')").Scan(&scope))
		require.Equal(t, tenantA, scope)
		_, err = b.svc.DecideTx(ctx, tx, decideInput(req.ID, approvals.StatusRejected, "sami"))
		return err
	})
	require.NoError(t, err)
	got, err := b.svc.Get(ctx, req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusRejected, got.Status)
	require.Equal(t, []approvals.AuditResult{approvals.AuditHookFailed, approvals.AuditAccepted},
		auditResults(b.auditTrail(t, req.ID)), "the failed attempt is kept with the caller's commit")
}

// Fifty deciders race, mixing approve and reject: exactly one decision is
// recorded, every answer agrees with it, every attempt is audited, and the
// continuation exists exactly when the winner approved.
func TestConcurrentDecisionsFirstWins(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)
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
				d, err := b.svc.Decide(ctx,
					decideInput(req.ID, decision, fmt.Sprintf("decider-%d", i)))
				answers[i] = answer{decision, d, err}
			})
		}
		close(start)
		wg.Wait()

		got, err := b.svc.Get(tenantCtx(t, tenantA), req.ID)
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
