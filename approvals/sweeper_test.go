package approvals_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
)

func TestSweeperExpiresAcrossTenants(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := tenantCtx(t, tenantA)
	due := b.newPending(t, 1)
	resB, err := b.svc.Request(tenantCtx(t, tenantB), riskyAction(2))
	require.NoError(t, err)
	decided := b.newPending(t, 3)
	_, err = b.svc.Decide(ctx, decideInput(decided.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	b.age(t, 30*time.Minute)
	fresh := b.newPending(t, 4) // expires 30 minutes after the others

	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{BatchSize: 1})
	require.NoError(t, err)
	n, err := sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due yet")

	b.age(t, 30*time.Minute)
	n, err = sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "both tenants' due requests, in batches of one")

	status := func(tenant, id string) approvals.Status {
		r, err := b.svc.GetForTenant(ctx, tenant, id)
		require.NoError(t, err)
		return r.Status
	}
	require.Equal(t, approvals.StatusExpired, status(tenantA, due.ID))
	require.Equal(t, approvals.StatusExpired, status(tenantB, resB.Request.ID))
	require.Equal(t, approvals.StatusApproved, status(tenantA, decided.ID), "decisions are never expired")
	require.Equal(t, approvals.StatusPending, status(tenantA, fresh.ID))
	trail := b.auditTrail(t, due.ID)
	require.Len(t, trail, 1)
	require.Equal(t, approvals.AuditExpired, trail[0].Result)
	require.Equal(t, approvals.SystemActor, trail[0].Actor)

	_, err = b.svc.Decide(ctx, decideInput(due.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)
	require.Zero(t, countContinuations(t, b.db.Admin, due.ID))

	n, err = sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second sweep finds nothing")

	// Through the application role, RLS hides every row: nothing expires.
	b.age(t, time.Hour)
	appSweeper, err := approvals.NewSweeper(b.db.App, approvals.SweeperConfig{})
	require.NoError(t, err)
	n, err = appSweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, approvals.StatusPending, status(tenantA, fresh.ID))
}

// Expiry is decided by the database's clock alone. The service has no
// process clock to be off: a request the database says is live stays
// decidable and is not swept, and one the database says is due can no
// longer be decided and is swept, whatever the instance's own time. The
// rows' times are set relative to the database's now() only.
func TestExpiryFollowsTheDatabaseClock(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: 24 * time.Hour})
	ctx := tenantCtx(t, tenantA)
	live, due := b.newPending(t, 1), b.newPending(t, 2)
	setExpiry := func(id, offset string) {
		_, err := b.db.Admin.Exec(ctx, `UPDATE platform.approvals_requests
			SET created_at = now() - interval '1 day', expires_at = now() + $2::interval WHERE id = $1`, id, offset)
		require.NoError(t, err)
	}
	// Both were made a day ago by the database's clock; one has a minute
	// left, the other expired a minute ago but was not swept yet.
	setExpiry(live.ID, "1 minute")
	setExpiry(due.ID, "-1 minute")

	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{})
	require.NoError(t, err)
	n, err := sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the request due by the database's clock")

	d, err := b.svc.Decide(ctx, decideInput(live.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err, "a live request stays decidable")
	require.Equal(t, approvals.StatusApproved, d.Status)
	_, err = b.svc.Decide(ctx, decideInput(due.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)

	// Due but not swept yet: still refused, on the database's clock.
	late := b.newPending(t, 3)
	setExpiry(late.ID, "-1 microsecond")
	_, err = b.svc.Decide(ctx, decideInput(late.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)
	require.Zero(t, countContinuations(t, b.db.Admin, late.ID))
	got, err := b.svc.Get(ctx, late.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status, "refused, not yet swept")
	// Asking again for the same action replaces it with a new request.
	res, err := b.svc.Request(ctx, riskyAction(3))
	require.NoError(t, err)
	require.True(t, res.Created)
	require.NotEqual(t, late.ID, res.Request.ID)
}

func TestSweeperRunSweepsUntilCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	req := b.newPending(t, 1)
	b.age(t, 2*time.Hour)

	var logs syncBuffer
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{
		Interval: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sweeper.Run(ctx) }()
	require.Eventually(t, func() bool {
		r, err := b.svc.GetForTenant(context.Background(), tenantA, req.ID)
		return err == nil && r.Status == approvals.StatusExpired
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	require.Contains(t, logs.String(), "rows=1")

	_, err = approvals.NewSweeper(b.db.System, approvals.SweeperConfig{BatchSize: -1})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A decider races the sweeper on requests that fall due while they run:
// whoever locks the row first wins, and the outcome is one of the
// consistent states, never both a decision and an expiry.
func TestSweeperRacesDecide(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := tenantCtx(t, tenantA)
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{})
	require.NoError(t, err)

	outcomes := map[approvals.Status]int{}
	for i := range 10 {
		req := b.newPending(t, i)
		// Due within a few milliseconds of the database's clock: around the
		// time both statements run.
		_, err := b.db.Admin.Exec(ctx, `UPDATE platform.approvals_requests
			SET expires_at = now() + $2 * interval '1 millisecond' WHERE id = $1`, req.ID, i%4)
		require.NoError(t, err)
		var wg sync.WaitGroup
		var decideErr, sweepErr error
		wg.Go(func() {
			_, decideErr = b.svc.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		})
		wg.Go(func() { _, sweepErr = sweeper.SweepOnce(ctx) })
		wg.Wait()
		require.NoError(t, sweepErr)

		got, err := b.svc.Get(ctx, req.ID)
		require.NoError(t, err)
		outcomes[got.Status]++
		switch got.Status {
		case approvals.StatusApproved:
			require.NoError(t, decideErr)
			require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
		case approvals.StatusExpired, approvals.StatusPending:
			// Pending: the decider saw it due before the sweeper did.
			require.ErrorIs(t, decideErr, approvals.ErrExpired)
			require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
		default:
			t.Fatalf("request %s left %s", req.ID, got.Status)
		}
		// Whatever won, a later sweep leaves a decision as it is and
		// expires an undecided request.
		b.age(t, time.Second)
		_, err = sweeper.SweepOnce(ctx)
		require.NoError(t, err)
		again, err := b.svc.Get(ctx, req.ID)
		require.NoError(t, err)
		if got.Status == approvals.StatusApproved {
			require.Equal(t, approvals.StatusApproved, again.Status)
		} else {
			require.Equal(t, approvals.StatusExpired, again.Status)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}
