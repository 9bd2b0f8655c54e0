package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

const (
	tenant  = "7a1c1a8e-0000-4000-8000-00000000000a"
	workers = 16
)

func noop(context.Context) (int, error) { return 1, nil }

// latencies collects per-workflow durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	slices.Sort(l.all)
	pct := func(p float64) float64 { return float64(l.all[int(p*float64(len(l.all)-1))].Microseconds()) / 1000 }
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "workflows/s")
	b.ReportMetric(float64(3*b.N)/secs, "steps/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// fanOut runs one workflow b.N times from 16 goroutines.
func fanOut(b *testing.B, one func(i int) error) *latencies {
	var next atomic.Int64
	lat := &latencies{}
	var wg sync.WaitGroup
	b.ResetTimer()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				start := time.Now()
				if err := one(i); err != nil {
					b.Error(err)
					return
				}
				lat.add(time.Since(start))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	return lat
}

// BenchmarkThreeSteps runs a workflow of three no-op steps b.N times from
// 16 goroutines with each library; every step's checkpoint is committed
// before the next step starts in both.
func BenchmarkThreeSteps(b *testing.B) {
	b.Run("durable", func(b *testing.B) {
		db := pgtest.New(b)
		ctx := context.Background()
		rt, err := durable.New(durable.Config{App: db.App, System: db.System, Concurrency: workers,
			PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(b, err)
		wf, err := durable.Register(rt, "three", func(ctx context.Context, in int) (int, error) {
			for _, name := range []string{"a", "b", "c"} {
				if _, err := durable.Step(ctx, name, noop); err != nil {
					return 0, err
				}
			}
			return in, nil
		})
		require.NoError(b, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- rt.Run(runCtx) }()
		defer func() { stop(); <-done }()
		fanOut(b, func(i int) error {
			run, err := wf.Start(ctx, tenant, i)
			if err != nil {
				return err
			}
			out, err := wf.Result(ctx, tenant, run.ID)
			if err == nil && out != i {
				err = fmt.Errorf("run %d returned %d", i, out)
			}
			return err
		}).report(b)
	})

	b.Run("dbos", func(b *testing.B) {
		db := pgtest.New(b)
		ctx := context.Background()
		dctx, err := dbos.NewContext(ctx, dbos.Config{AppName: "bench", DatabaseURL: db.URL(pgtest.RoleAdmin),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(b, err)
		three := func(ctx dbos.Context, in int) (int, error) {
			for _, name := range []string{"a", "b", "c"} {
				if _, err := dbos.RunAsStep(ctx, noop, dbos.WithStepName(name)); err != nil {
					return 0, err
				}
			}
			return in, nil
		}
		dbos.RegisterWorkflow(dctx, three)
		require.NoError(b, dbos.Launch(dctx))
		defer func() { _ = dbos.Shutdown(dctx, 10*time.Second) }()
		fanOut(b, func(i int) error {
			h, err := dbos.RunWorkflow(dctx, three, i)
			if err != nil {
				return err
			}
			out, err := h.GetResult()
			if err == nil && out != i {
				err = fmt.Errorf("run %d returned %d", i, out)
			}
			return err
		}).report(b)
	})
}
