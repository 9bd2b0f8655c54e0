package dlq_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

func reportJobsPerSecond(b *testing.B, jobs int) {
	b.ReportMetric(float64(jobs)/b.Elapsed().Seconds(), "jobs/s")
}

// BenchmarkEnqueue enqueues one job per call, each in its own tenant-scoped
// transaction of the app role.
func BenchmarkEnqueue(b *testing.B) {
	db := pgtest.New(b)
	app := newClient(b, db.App, dlq.Config{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q", Payload: map[string]int{"n": 1}}); err != nil {
			b.Fatal(err)
		}
	}
	reportJobsPerSecond(b, b.N)
}

// BenchmarkEnqueueMany enqueues 100 jobs per call in one statement.
func BenchmarkEnqueueMany(b *testing.B) {
	db := pgtest.New(b)
	app := newClient(b, db.App, dlq.Config{})
	ctx := context.Background()
	params := make([]dlq.JobParams, 100)
	for i := range params {
		params[i] = dlq.JobParams{Queue: "q", Payload: map[string]int{"n": i}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := app.EnqueueManyForTenant(ctx, tenantA, params); err != nil {
			b.Fatal(err)
		}
	}
	reportJobsPerSecond(b, b.N*len(params))
}

// BenchmarkWorkDown works down b.N no-op jobs inserted in bulk beforehand:
// fetch, run, complete.
func BenchmarkWorkDown(b *testing.B) {
	db := pgtest.New(b)
	app := newClient(b, db.App, dlq.Config{})
	ctx := context.Background()
	n := b.N
	for done := 0; done < n; {
		batch := make([]dlq.JobParams, min(5000, n-done))
		for i := range batch {
			batch[i] = dlq.JobParams{Queue: "q"}
		}
		_, err := app.EnqueueManyForTenant(ctx, tenantA, batch)
		require.NoError(b, err)
		done += len(batch)
	}
	var ran atomic.Int64
	allRan := make(chan struct{})
	worker := newClient(b, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 100, Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error {
			if ran.Add(1) == int64(n) {
				close(allRan)
			}
			return nil
		})},
	}})
	b.ResetTimer()
	require.NoError(b, worker.Start(ctx))
	<-allRan
	require.NoError(b, worker.Stop(ctx)) // records the last completions
	b.StopTimer()
	require.Equal(b, n, countJobs(b, db.System, "state = 'completed'"))
	reportJobsPerSecond(b, n)
}

// BenchmarkInsertAndWork is the steady mode: 8 producers enqueue b.N jobs
// one at a time while a worker runs them; it reports end-to-end jobs/s and
// the enqueue latency percentiles.
func BenchmarkInsertAndWork(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(b, err)
	cfg.MaxConns = 16 // a connection for each producer
	appPool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(appPool.Close)
	app := newClient(b, appPool, dlq.Config{})
	n := b.N
	var ran atomic.Int64
	allRan := make(chan struct{})
	worker := newClient(b, db.System, dlq.Config{Queues: map[string]dlq.QueueConfig{
		"q": {Concurrency: 100, Handler: dlq.HandlerFunc(func(context.Context, *dlq.Job) error {
			if ran.Add(1) == int64(n) {
				close(allRan)
			}
			return nil
		})},
	}})
	require.NoError(b, worker.Start(ctx))
	const producers = 8
	latencies := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for range producers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				began := time.Now()
				if _, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q"}); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(began)
			}
		})
	}
	wg.Wait()
	<-allRan
	require.NoError(b, worker.Stop(ctx))
	b.StopTimer()
	reportJobsPerSecond(b, n)
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[n/2].Microseconds())/1000, "p50-enqueue-ms")
	b.ReportMetric(float64(latencies[n*99/100].Microseconds())/1000, "p99-enqueue-ms")
}
