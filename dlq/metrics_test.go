package dlq_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/metrictest"
	"github.com/dealix/platform/internal/pgtest"
)

// Not parallel: it installs the global meter provider. The queue name is
// this test's own, so other tests' jobs do not count.
func TestOutcomesAndDepthsAreMetrics(t *testing.T) {
	reader := metrictest.InstallGlobal()
	// The provider lives as long as the process: a queue of this run's own
	// keeps the counts of an earlier -count run out.
	queueName := "metrics-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	db := pgtest.New(t)
	worker := newClient(t, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		queueName: {Handler: dlq.HandlerFunc(func(_ context.Context, job *dlq.Job) error {
			if job.Kind == "poison" {
				return errors.New("cannot send")
			}
			return nil
		})},
	}})
	app := newClient(t, db.App, dlq.Config{})
	res, err := app.EnqueueManyForTenant(context.Background(), tenantA, []dlq.JobParams{
		{Queue: queueName, Kind: "ok"},
		{Queue: queueName, Kind: "ok"},
		{Queue: queueName, Kind: "poison", MaxAttempts: 1},
		{Queue: queueName, Kind: "later", RunAt: time.Now().Add(time.Hour)},
	})
	require.NoError(t, err)
	// Depths span tenants: a job of another tenant counts too.
	other, err := app.EnqueueForTenant(context.Background(), tenantB, dlq.JobParams{Queue: queueName, Kind: "later", RunAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	require.NotZero(t, other.ID)
	start(t, worker)
	waitState(t, worker, res[0].ID, dlq.StateCompleted)
	waitState(t, worker, res[1].ID, dlq.StateCompleted)
	waitState(t, worker, res[2].ID, dlq.StateDead)

	queue := attribute.String("queue", queueName)
	require.Eventually(t, func() bool {
		// Completions are written in batches after the handler returns.
		return reader.Sum(t, "dealix.dlq.attempts", queue, attribute.String("outcome", "completed")) == 2
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(1), reader.Sum(t, "dealix.dlq.attempts", queue, attribute.String("outcome", "dead")))
	require.Zero(t, reader.Sum(t, "dealix.dlq.attempts", queue, attribute.String("outcome", "retried")))

	registration, err := worker.ObserveQueues()
	require.NoError(t, err)
	defer func() { require.NoError(t, registration.Unregister()) }()
	for state, want := range map[string]int64{"dead": 1, "scheduled": 2, "available": 0, "running": 0} {
		got, ok := reader.Gauge(t, "dealix.dlq.jobs", queue, attribute.String("state", state))
		require.True(t, ok, state)
		require.Equal(t, want, got, state)
	}
}
