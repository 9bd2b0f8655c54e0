package durable_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/metrictest"
	"github.com/dealix/platform/internal/pgtest"
)

var metricsRuns atomic.Int64

// Not parallel: it installs the global meter provider. The workflow names
// are this test's own, and this run's (the reader is installed once per
// binary and keeps counting under -count), so other runs do not count.
func TestRunOutcomesAndStepDurationsAreMetrics(t *testing.T) {
	reader := metrictest.InstallGlobal()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	suffix := fmt.Sprint(metricsRuns.Add(1))
	ok, err := durable.Register(rt, "metrics-ok-"+suffix, func(ctx context.Context, in int) (int, error) {
		doubled, err := durable.Step(ctx, "double", func(context.Context) (int, error) { return in * 2, nil })
		if err != nil {
			return 0, err
		}
		return durable.TxStep(ctx, "plus-one", func(_ context.Context, _ pgx.Tx) (int, error) { return doubled + 1, nil })
	})
	require.NoError(t, err)
	failing, err := durable.Register(rt, "metrics-fail-"+suffix, func(ctx context.Context, in int) (int, error) {
		return 0, errors.New("refused")
	})
	require.NoError(t, err)
	work(t, rt)

	run, err := ok.Start(ctxA, 20)
	require.NoError(t, err)
	out, err := ok.Result(ctxA, run.ID)
	require.NoError(t, err)
	require.Equal(t, 41, out)
	failed, err := failing.Start(ctxA, 1)
	require.NoError(t, err)
	// Wait on a run this runtime executes returns once its execution
	// ended, so after its outcome was counted.
	require.Equal(t, durable.StatusFailed, waitRun(t, rt, tenantA, failed.ID).Status)

	okWorkflow := attribute.String("workflow", "metrics-ok-"+suffix)
	require.Equal(t, int64(1), reader.Sum(t, "dealix.durable.runs", okWorkflow, attribute.String("outcome", "completed")))
	require.Equal(t, int64(1), reader.Sum(t, "dealix.durable.runs", attribute.String("workflow", "metrics-fail-"+suffix), attribute.String("outcome", "failed")))
	require.Equal(t, uint64(1), reader.HistogramCount(t, "dealix.durable.step.duration", okWorkflow, attribute.String("kind", "step"), attribute.String("result", "ok")))
	require.Equal(t, uint64(1), reader.HistogramCount(t, "dealix.durable.step.duration", okWorkflow, attribute.String("kind", "tx"), attribute.String("result", "ok")))
}
