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
	ctx := context.Background()
	due := b.newPending(t, 1)
	otherTenant := riskyAction(2)
	otherTenant.TenantID = tenantB
	resB, err := b.svc.Request(ctx, otherTenant)
	require.NoError(t, err)
	decided := b.newPending(t, 3)
	_, err = b.svc.Decide(ctx, decideInput(decided.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	b.clock.Advance(30 * time.Minute)
	fresh := b.newPending(t, 4) // expires 30 minutes after the others

	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{Now: b.clock.Now, BatchSize: 1})
	require.NoError(t, err)
	n, err := sweeper.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "nothing is due yet")

	b.clock.Advance(30 * time.Minute)
	n, err = sweeper.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n, "both tenants' due requests, in batches of one")

	status := func(tenant, id string) approvals.Status {
		r, err := b.svc.Get(ctx, tenant, id)
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
	require.Equal(t, b.clock.Now(), trail[0].RecordedAt)

	_, err = b.svc.Decide(ctx, decideInput(due.ID, approvals.StatusApproved, "sami"))
	require.ErrorIs(t, err, approvals.ErrExpired)
	require.Zero(t, countContinuations(t, b.db.Admin, due.ID))

	n, err = sweeper.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second sweep finds nothing")

	// Through the application role, RLS hides every row: nothing expires.
	b.clock.Advance(time.Hour)
	appSweeper, err := approvals.NewSweeper(b.db.App, approvals.SweeperConfig{Now: b.clock.Now})
	require.NoError(t, err)
	n, err = appSweeper.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, approvals.StatusPending, status(tenantA, fresh.ID))
}

func TestSweeperRunSweepsUntilCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	req := b.newPending(t, 1)
	b.clock.Advance(2 * time.Hour)

	var logs syncBuffer
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{
		Now: b.clock.Now, Interval: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sweeper.Run(ctx); close(done) }()
	require.Eventually(t, func() bool {
		r, err := b.svc.Get(context.Background(), tenantA, req.ID)
		return err == nil && r.Status == approvals.StatusExpired
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	require.Contains(t, logs.String(), "count=1")

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

// A decider whose clock is just before expiry races the sweeper whose clock
// is just after: whoever locks the row first wins, and the outcome is one
// of two consistent states, never both.
func TestSweeperRacesDecide(t *testing.T) {
	t.Parallel()
	b := setup(t, approvals.Config{TTL: time.Hour})
	ctx := context.Background()
	start := b.clock.Now()
	deciderClock := func() time.Time { return start.Add(time.Hour - time.Microsecond) }
	sweeperClock := func() time.Time { return start.Add(time.Hour) }
	decider, err := approvals.New(b.db.App, approvals.Config{
		Now: deciderClock, OnApprove: enqueueContinuation, Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{Now: sweeperClock})
	require.NoError(t, err)

	outcomes := map[approvals.Status]int{}
	for i := range 10 {
		req := b.newPending(t, i)
		var wg sync.WaitGroup
		var decideErr, sweepErr error
		wg.Go(func() {
			_, decideErr = decider.Decide(ctx, decideInput(req.ID, approvals.StatusApproved, "sami"))
		})
		wg.Go(func() { _, sweepErr = sweeper.Sweep(ctx) })
		wg.Wait()
		require.NoError(t, sweepErr)

		got, err := b.svc.Get(ctx, tenantA, req.ID)
		require.NoError(t, err)
		outcomes[got.Status]++
		switch got.Status {
		case approvals.StatusApproved:
			require.NoError(t, decideErr)
			require.Equal(t, 1, countContinuations(t, b.db.Admin, req.ID))
		case approvals.StatusExpired:
			require.ErrorIs(t, decideErr, approvals.ErrExpired)
			require.Zero(t, countContinuations(t, b.db.Admin, req.ID))
		default:
			t.Fatalf("request %s left %s", req.ID, got.Status)
		}
		// Whatever won, a later sweep leaves it as it is.
		_, err = sweeper.Sweep(ctx)
		require.NoError(t, err)
		again, err := b.svc.Get(ctx, tenantA, req.ID)
		require.NoError(t, err)
		require.Equal(t, got.Status, again.Status)
	}
	t.Logf("outcomes: %v", outcomes)
}
