package durable_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

func noop(context.Context) (int, error) { return 1, nil }

// BenchmarkStepCheckpoint measures one step after another in one run: each
// op is a no-op step whose checkpoint commits before the next starts.
func BenchmarkStepCheckpoint(b *testing.B) {
	db := pgtest.New(b)
	rt := newRuntime(b, db, nil)
	_, err := durable.Register(rt, "steps", func(ctx context.Context, n int) (int, error) {
		for i := range n {
			if _, err := durable.Step(ctx, fmt.Sprint("s", i), noop); err != nil {
				return 0, err
			}
		}
		return n, nil
	})
	require.NoError(b, err)
	work(b, rt)
	b.ResetTimer()
	run, err := rt.Start(ctxA, "steps", b.N)
	require.NoError(b, err)
	done := waitRun(b, rt, tenantA, run.ID)
	b.StopTimer()
	require.Equal(b, durable.StatusCompleted, done.Status, done.Error)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

// BenchmarkStartRun measures starting runs (no workers) from parallel
// goroutines.
func BenchmarkStartRun(b *testing.B) {
	db := pgtest.New(b)
	rt := newRuntime(b, db, nil)
	registerGreet(b, rt)
	b.SetParallelism(8) // 16 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rt.Start(ctxA, "greet", greeting{Name: "x"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "starts/s")
}

// BenchmarkThreeStepWorkflows starts b.N workflows of three no-op steps
// from 16 goroutines and executes them with 16 workers; latency per
// workflow is from its start to its completion as recorded in the table.
func BenchmarkThreeStepWorkflows(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	rt := newRuntime(b, db, func(c *durable.Config) { c.Concurrency = 16; c.PollInterval = 5 * time.Millisecond })
	_, err := durable.Register(rt, "three", func(ctx context.Context, in int) (int, error) {
		for _, name := range []string{"a", "b", "c"} {
			if _, err := durable.Step(ctx, name, noop); err != nil {
				return 0, err
			}
		}
		return in, nil
	})
	require.NoError(b, err)
	work(b, rt)
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + 15) / 16
	for g := range 16 {
		wg.Go(func() {
			for i := g * per; i < min((g+1)*per, b.N); i++ {
				if _, err := rt.Start(ctxA, "three", i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for {
		var left int
		require.NoError(b, db.System.QueryRow(ctx, "SELECT count(*) FROM platform.durable_runs WHERE status <> 'completed'").Scan(&left))
		if left == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	var p50, p99 float64
	require.NoError(b, db.System.QueryRow(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at)),
		       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
		FROM platform.durable_runs`).Scan(&p50, &p99))
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "workflows/s")
	b.ReportMetric(float64(3*b.N)/secs, "steps/s")
	b.ReportMetric(p50*1000, "p50-ms")
	b.ReportMetric(p99*1000, "p99-ms")
}

// BenchmarkBaselineCommits is the reference for the others: single-row
// committed inserts from 16 goroutines, on the same server in the same run.
func BenchmarkBaselineCommits(b *testing.B) {
	db := pgtest.New(b)
	ctx := context.Background()
	_, err := db.Admin.Exec(ctx, "CREATE TABLE bench_rows (id bigint GENERATED ALWAYS AS IDENTITY, v int)")
	require.NoError(b, err)
	b.SetParallelism(8) // 16 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Admin.Exec(ctx, "INSERT INTO bench_rows (v) VALUES (1)"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}
