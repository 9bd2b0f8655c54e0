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

// report reports the figures and returns workflows/s.
func (l *latencies) report(b *testing.B) float64 {
	slices.Sort(l.all)
	pct := func(p float64) float64 { return float64(l.all[int(p*float64(len(l.all)-1))].Microseconds()) / 1000 }
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "workflows/s")
	b.ReportMetric(float64(3*b.N)/secs, "steps/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	return float64(b.N) / secs
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

// The workflow comparison's configuration, stated with its figures:
//
//   - both sides: 16 client goroutines, each starting a workflow of three
//     no-op steps and waiting for its result, every checkpoint committed
//     before the next step; a fresh database of the same server per side;
//     20 database connections in all per side.
//   - durable: Concurrency 16, PollInterval 10ms; an App pool of 16
//     connections (serving role, under RLS: starts, checkpoints, results)
//     and a System pool of 4 (BYPASSRLS: claims, lease renewal); starts
//     through the runtime execute at once in its free slots, and the
//     checkpoints of runs executing together share a commit.
//   - DBOS Go SDK v1.8.0: RunWorkflow on one SystemDBPool of 20
//     connections (the superuser, as DBOS creates its own schema).
const (
	durableAppConns    = 16
	durableSystemConns = 4
	dbosConns          = durableAppConns + durableSystemConns
)

// threeStepsRuns alternates which side runs first across -count runs, so
// neither always meets a colder or warmer server.
var threeStepsRuns atomic.Int64

// BenchmarkThreeSteps runs a workflow of three no-op steps b.N times from
// 16 goroutines with each library and prints the ratio of their
// workflows/s (durable / DBOS).
func BenchmarkThreeSteps(b *testing.B) {
	sides := []struct {
		name string
		run  func(b *testing.B) float64
	}{{"durable", benchDurable}, {"dbos", benchDBOS}}
	if threeStepsRuns.Add(1)%2 == 0 {
		slices.Reverse(sides)
	}
	rates := map[string]float64{}
	for _, side := range sides {
		b.Run(side.name, func(b *testing.B) { rates[side.name] = side.run(b) })
	}
	if rates["dbos"] > 0 {
		// Printed, not logged: a benchmark with sub-benchmarks has no
		// result line of its own to carry it.
		fmt.Printf("BenchmarkThreeSteps: durable/dbos workflows/s %.2f (durable %.0f, dbos %.0f; %s ran first; %d connections each side)\n",
			rates["durable"]/rates["dbos"], rates["durable"], rates["dbos"], sides[0].name, dbosConns)
	}
}

func benchDurable(b *testing.B) float64 {
	db := pgtest.New(b)
	app := newPool(b, db, pgtest.RoleApp, durableAppConns)
	system := newPool(b, db, pgtest.RoleSystem, durableSystemConns)
	rt, err := durable.New(durable.Config{App: app, System: system, Concurrency: workers,
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
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	defer func() { stop(); <-done }()
	ctx := context.Background()
	rate := fanOut(b, func(i int) error {
		run, err := wf.StartForTenant(ctx, tenant, i)
		if err != nil {
			return err
		}
		out, err := wf.ResultForTenant(ctx, tenant, run.ID)
		if err == nil && out != i {
			err = fmt.Errorf("run %d returned %d", i, out)
		}
		return err
	}).report(b)
	b.ReportMetric(durableAppConns+durableSystemConns, "conns")
	return rate
}

func benchDBOS(b *testing.B) float64 {
	db := pgtest.New(b)
	ctx := context.Background()
	pool := newPool(b, db, pgtest.RoleAdmin, dbosConns)
	dctx, err := dbos.NewContext(ctx, dbos.Config{AppName: "bench", SystemDBPool: pool,
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
	rate := fanOut(b, func(i int) error {
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
	b.ReportMetric(dbosConns, "conns")
	return rate
}
