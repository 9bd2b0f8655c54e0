package approvals_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/metrictest"
)

// Not parallel: it installs the global meter provider, which the package's
// instruments forward to.
func TestMetricsArePublishedThroughTheGlobalMeter(t *testing.T) {
	reader := metrictest.InstallGlobal()
	b := setup(t, approvals.Config{})
	ctx := tenantCtx(t, tenantA)

	allowed := riskyAction(0)
	allowed.Kind, allowed.Recipients = "metrics.test", 1
	_, err := b.svc.Request(ctx, allowed)
	require.NoError(t, err)
	held := riskyAction(1)
	held.Kind = "metrics.test"
	first, err := b.svc.Request(ctx, held)
	require.NoError(t, err)
	_, err = b.svc.Request(ctx, held)
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(first.Request.ID, approvals.StatusApproved, "sami"))
	require.NoError(t, err)
	_, err = b.svc.Decide(ctx, decideInput(first.Request.ID, approvals.StatusRejected, "omar"))
	require.ErrorIs(t, err, approvals.ErrAlreadyDecided)

	toExpire := riskyAction(2)
	toExpire.Kind = "metrics.test"
	_, err = b.svc.Request(ctx, toExpire)
	require.NoError(t, err)

	registration, err := approvals.ObservePending(b.db.System)
	require.NoError(t, err)
	defer func() { require.NoError(t, registration.Unregister()) }()
	pending, ok := reader.Gauge(t, "dealix.approvals.pending")
	require.True(t, ok)
	require.Equal(t, int64(1), pending, "one request still pending")

	b.age(t, 30*24*time.Hour)
	sweeper, err := approvals.NewSweeper(b.db.System, approvals.SweeperConfig{})
	require.NoError(t, err)
	n, err := sweeper.SweepOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)

	kind := attribute.String("kind", "metrics.test")
	require.Equal(t, int64(1), reader.Sum(t, "dealix.approvals.requests", kind, attribute.String("outcome", "allowed")))
	require.Equal(t, int64(2), reader.Sum(t, "dealix.approvals.requests", kind, attribute.String("outcome", "created")))
	require.Equal(t, int64(1), reader.Sum(t, "dealix.approvals.requests", kind, attribute.String("outcome", "existing")))
	require.Equal(t, int64(1), reader.Sum(t, "dealix.approvals.decisions", attribute.String("decision", "approved"), attribute.String("result", "accepted")))
	require.Equal(t, int64(1), reader.Sum(t, "dealix.approvals.decisions", attribute.String("decision", "rejected"), attribute.String("result", "conflict")))
	require.Equal(t, int64(1), reader.Sum(t, "dealix.approvals.expired"))
	pending, _ = reader.Gauge(t, "dealix.approvals.pending")
	require.Zero(t, pending)
}
