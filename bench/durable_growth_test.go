package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// BenchmarkDurableGrowth measures how durable's costs grow with the runs
// it already finished: claim latency and three-step workflow throughput
// with 0, 100k and 1M completed runs (each with three checkpoints) in the
// tables, and what the retention Sweeper costs while work runs.
//
// Configuration: one database per size; the completed runs are spread
// over 50 tenants and finished 40 days ago (so the default 30-day
// retention has expired them all), written with generate_series. Three
// rounds visit the sizes in turn (each round starting at the next size,
// so the machine's drift does not pass for growth); each visit VACUUM
// ANALYZEs the tables (as autovacuum keeps them), starts a runtime, warms
// it up (400 workflows) and measures:
//
//   - claim latency: the workers' claim query (as durable/worker.go sends
//     it, for up to 16 runs) against 200 pending runs of one workflow,
//     100 times, each in a transaction rolled back so the same runs stay
//     pending; the median of the 100 is the visit's figure. Its plan
//     (EXPLAIN ANALYZE) is logged once per size.
//   - steps/s: 2,000 three-step workflows (no-op steps) from 16
//     goroutines, as BenchmarkThreeSteps runs durable: Concurrency 16,
//     PollInterval 10ms, App pool 16 connections, System pool 4.
//
// Then, at 1M, the sweeper's cost: three rounds of 2,000 workflows each
// without a Sweeper, with one (BatchSize 1000, default 30-day retention,
// its own System connection, NoBatchPause) deleting the expired runs
// meanwhile, and with one pausing each of -durable-sweep-pauses (default
// durable.DefaultSweepBatchPause, 100ms) between its batches
// (SweeperConfig.BatchPause), each round in another order
// (-durable-sweep-rounds and -durable-sweep-workflows set the rounds and
// their size). The runs each sweeper deleted during its rounds give its
// rate under load; at the end each sweeper works alone (SweepOnce, for
// at most ten seconds), which gives its rate on an idle machine.
//
// Each point is the median of its three rounds, with their spread (min,
// max). Long form (writes results/durable-claim-latency.json,
// results/durable-steps-per-s.json and results/durable-sweeper-cost.json;
// about two minutes, half of it filling):
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkDurableGrowth -benchtime 1x -timeout 30m -v
//
// -durable-sweeper-only fills the largest size only, measures only the
// sweeper's cost and writes only results/durable-sweeper-cost.json.
//
// With -short it uses 0 and 1,000 runs and 200 workflows per round and
// writes nothing (the CI smoke form).
func BenchmarkDurableGrowth(b *testing.B) {
	b.StopTimer()
	sizes, workflows := []int{0, 100_000, 1_000_000}, 2000
	if testing.Short() {
		sizes, workflows = []int{0, 1000}, 200
	}
	if *durableSweeperOnly {
		sizes = sizes[len(sizes)-1:]
	}
	const rounds = 3
	ctx := context.Background()
	dbs := make([]*pgtest.DB, len(sizes))
	for i, size := range sizes {
		dbs[i] = pgtest.New(b)
		fill(b, dbs[i], size)
	}

	// Rounds visit the sizes in turn, each round starting at the next
	// size, so that the machine's drift over the run does not pass for
	// growth.
	lat := make([][]float64, len(sizes))
	rate := make([][]float64, len(sizes))
	for r := range rounds {
		if *durableSweeperOnly {
			break
		}
		for k := range sizes {
			i := (r + k) % len(sizes)
			// Statistics as autovacuum keeps them: without, the first
			// size's tables, analyzed empty, would be planned as empty
			// while the rounds fill them.
			analyze(b, dbs[i])
			g := newGrowth(b, dbs[i])
			g.claimLatency(b) // warm-up
			g.stepsPerSecond(b, warmUp)
			if r == 0 {
				b.Logf("claim plan with %d completed runs:\n%s", sizes[i], g.explainClaim(b))
			}
			lat[i] = append(lat[i], g.claimLatency(b))
			rate[i] = append(rate[i], g.stepsPerSecond(b, workflows))
			g.close()
		}
	}
	claimLat := Series{Name: "claim of up to 16 of 200 pending runs"}
	steps := Series{Name: "three-step workflows, 16 goroutines"}
	for i, size := range sizes {
		if *durableSweeperOnly {
			break
		}
		b.Logf("%d completed runs: claim ms %.3f, steps/s %.0f", size, lat[i], rate[i])
		claimLat.Points = append(claimLat.Points, point(float64(size), lat[i]))
		steps.Points = append(steps.Points, point(float64(size), rate[i]))
	}

	// The sweeper's cost, against the expired runs of the largest size,
	// in rounds of the three modes, each round in another order so that
	// no mode always follows another.
	largest := dbs[len(dbs)-1]
	g := newGrowth(b, largest)
	defer g.close()
	g.stepsPerSecond(b, warmUp)
	sweepPool := newPool(b, largest, pgtest.RoleSystem, 1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var pauses []time.Duration
	for _, p := range strings.Split(*durableSweepPauses, ",") {
		if p = strings.TrimSpace(p); p != "" {
			d, err := time.ParseDuration(p)
			require.NoError(b, err, "-durable-sweep-pauses")
			pauses = append(pauses, d)
		}
	}
	modes := []*durable.Sweeper{nil} // nil: no sweeper
	names := []string{"without sweeper"}
	for _, pause := range append([]time.Duration{durable.NoBatchPause}, pauses...) {
		s, err := durable.NewSweeper(sweepPool, durable.SweeperConfig{Interval: time.Second, Logger: quiet, BatchPause: pause})
		require.NoError(b, err)
		modes = append(modes, s)
		if pause == durable.NoBatchPause {
			names = append(names, "with sweeper, no pause")
		} else {
			names = append(names, fmt.Sprintf("with sweeper, BatchPause %v", pause))
		}
	}
	expired := func() int64 {
		var n int64
		require.NoError(b, g.system.QueryRow(ctx,
			`SELECT count(*) FROM platform.durable_runs WHERE finished_at < now() - interval '30 days'`).Scan(&n))
		return n
	}
	sweepWorkflows := workflows
	if !testing.Short() {
		sweepWorkflows = *durableSweepWorkflows
	}
	// sweeping measures steps/s with s deleting meanwhile (none: nil) and
	// returns them with the runs s deleted per second of the round.
	sweeping := func(s *durable.Sweeper) (stepsPerS, runsPerS float64) {
		if s == nil {
			return g.stepsPerSecond(b, sweepWorkflows), 0
		}
		before := expired()
		sweepCtx, stopSweep := context.WithCancel(ctx)
		swept := make(chan struct{})
		began := time.Now()
		go func() { defer close(swept); _ = s.Run(sweepCtx) }()
		time.Sleep(100 * time.Millisecond) // the sweep under way
		stepsPerS = g.stepsPerSecond(b, sweepWorkflows)
		stopSweep()
		<-swept
		return stepsPerS, float64(before-expired()) / time.Since(began).Seconds()
	}
	sweepRounds := rounds
	if !testing.Short() {
		sweepRounds = max(*durableSweepRounds, rounds)
	}
	rates := make([][]float64, len(modes))
	deletes := make([][]float64, len(modes))
	for r := range sweepRounds {
		for k := range modes {
			m := (r + k) % len(modes)
			stepsPerS, runsPerS := sweeping(modes[m])
			rates[m] = append(rates[m], stepsPerS)
			deletes[m] = append(deletes[m], runsPerS)
		}
	}
	without := rates[0]
	for m := 1; m < len(modes); m++ {
		// Each round's own ratio too: the rounds are side by side in
		// time, so the machine's slower drifts cancel in them.
		paired := make([]float64, len(without))
		for r := range without {
			paired[r] = rates[m][r] / without[r]
		}
		b.Logf("sweeper cost, %s: steps/s %.0f %v, %.2f× without's %.0f %v (per round: median %.2f %.2f); "+
			"%.0f runs deleted per second meanwhile %v",
			names[m], median(rates[m]), rates[m], median(rates[m])/median(without), median(without), without,
			median(paired), paired, median(deletes[m]), deletes[m])
	}
	b.Logf("%d expired runs left", expired())
	// The sweepers alone on what is left, without the workers competing,
	// each for at most ten seconds: the paced ones first, as the unpaced
	// one may delete all that is left in that time.
	for _, m := range append(rangeFrom(2, len(modes)), 1) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		began := time.Now()
		n, err := modes[m].SweepOnce(sctx)
		took := time.Since(began)
		if sctx.Err() == nil {
			require.NoError(b, err)
		}
		cancel()
		if n > 0 {
			b.Logf("%s, alone: %d runs in %v, %.0f runs/s; 1M would take %.0f s",
				names[m], n, took.Round(time.Millisecond), float64(n)/took.Seconds(), 1e6*took.Seconds()/float64(n))
		}
	}
	last := float64(sizes[len(sizes)-1])
	sweepSeries := make([]Series, len(modes))
	for m := range modes {
		sweepSeries[m] = Series{Name: names[m], Points: []Point{point(last, rates[m])}}
	}

	if !*durableSweeperOnly {
		b.ReportMetric(claimLat.Points[0].Y, "claim-ms-empty")
		b.ReportMetric(claimLat.Points[len(sizes)-1].Y, "claim-ms-largest")
		b.ReportMetric(steps.Points[0].Y, "steps/s-empty")
		b.ReportMetric(steps.Points[len(sizes)-1].Y, "steps/s-largest")
		b.ReportMetric(steps.Points[len(sizes)-1].Y/steps.Points[0].Y, "largest/empty")
	}
	b.ReportMetric(median(rates[1])/median(without), "with-sweeper/without")
	for m := 2; m < len(modes); m++ {
		b.ReportMetric(median(rates[m])/median(without), fmt.Sprintf("with-sweeper-paced-%v/without", pauses[m-2]))
	}
	if testing.Short() {
		return
	}
	config := fmt.Sprintf("durable: Concurrency %d, PollInterval 10ms, App pool %d + System pool %d connections; "+
		"completed runs (3 checkpoints each, 50 tenants, finished 40 days ago) written with generate_series; "+
		"one database per size, rounds visiting the sizes in turn, each visit VACUUM ANALYZE and %d warm-up workflows; %d rounds, median and min-max",
		workers, durableAppConns, durableSystemConns, warmUp, rounds)
	command := "cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkDurableGrowth -benchtime 1x -timeout 30m -v" +
		fmt.Sprintf(" -args -durable-sweep-pauses=%s -durable-sweep-rounds=%d -durable-sweep-workflows=%d",
			*durableSweepPauses, sweepRounds, sweepWorkflows)
	if *durableSweeperOnly {
		command += " -durable-sweeper-only"
	}
	curves := []Curve{{
		Name: "durable-claim-latency", Title: "durable: claim latency as completed runs grow",
		XLabel: "completed runs in the table", YLabel: "claim latency, ms (median of 100)", LogX: true,
		Config: config + "; claim query for up to 16 of 200 pending runs, in a transaction rolled back",
		Series: []Series{claimLat},
	}, {
		Name: "durable-steps-per-s", Title: "durable: steps/s as completed runs grow",
		XLabel: "completed runs in the table", YLabel: "steps/s", LogX: true,
		Config: config + fmt.Sprintf("; %d three-step workflows from %d goroutines per round", workflows, workers),
		Series: []Series{steps},
	}, {
		Name: "durable-sweeper-cost", Title: "durable: steps/s with and without the retention sweeper",
		XLabel: "expired runs in the table at the start", YLabel: "steps/s", LogX: true,
		Config: config + fmt.Sprintf("; sweeper cost: %d rounds of %d workflows per mode, the modes in rotating order; "+
			"Sweeper BatchSize 1000, retention 30 days, its own connection, deleting meanwhile (NoBatchPause, or BatchPause %s)",
			sweepRounds, sweepWorkflows, *durableSweepPauses),
		Series: sweepSeries,
	}}
	if *durableSweeperOnly {
		curves = curves[2:]
	}
	for _, c := range curves {
		c.Command = command
		require.NoError(b, WriteCurve("results", c))
	}
}

// rangeFrom is lo, lo+1, …, hi-1.
func rangeFrom(lo, hi int) []int {
	var r []int
	for i := lo; i < hi; i++ {
		r = append(r, i)
	}
	return r
}

var (
	durableSweepPauses    = flag.String("durable-sweep-pauses", durable.DefaultSweepBatchPause.String(), "the paced Sweepers' BatchPause values in BenchmarkDurableGrowth, comma-separated")
	durableSweepRounds    = flag.Int("durable-sweep-rounds", 3, "rounds of each mode of BenchmarkDurableGrowth's sweeper cost (at least 3)")
	durableSweepWorkflows = flag.Int("durable-sweep-workflows", 2000, "workflows of each round of BenchmarkDurableGrowth's sweeper cost")
	durableSweeperOnly    = flag.Bool("durable-sweeper-only", false, "BenchmarkDurableGrowth measures the sweeper's cost only and writes only results/durable-sweeper-cost.json")
)

// growth is a durable runtime on one of the growth benchmark's databases.
type growth struct {
	system *pgxpool.Pool // BYPASSRLS: claims and counts
	wf     *durable.Workflow[int, int]
	close  func()
}

func newGrowth(b *testing.B, db *pgtest.DB) *growth {
	wf, stop := runThreeSteps(b, db)
	claims := newPool(b, db, pgtest.RoleSystem, 2)
	return &growth{system: claims, wf: wf, close: func() {
		stop()
		claims.Close()
	}}
}

// fill writes size completed runs, each with three checkpoints, in
// chunks of 100k, and vacuums.
func fill(b *testing.B, db *pgtest.DB, size int) {
	ctx := context.Background()
	began := time.Now()
	system := newPool(b, db, pgtest.RoleSystem, 1)
	defer system.Close()
	for lo := 0; lo < size; lo += 100_000 {
		hi := min(lo+100_000, size) - 1
		_, err := system.Exec(ctx, `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, output, attempt, created_at, updated_at, finished_at)
SELECT ('7a1c1a8e-0000-4000-8000-' || lpad(to_hex(i % 50), 12, '0'))::uuid, 'done-' || i, 'three', 'completed',
       '1', '1', 1, now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'
FROM generate_series($1::int, $2::int) AS i`, lo, hi)
		require.NoError(b, err)
		_, err = system.Exec(ctx, `
INSERT INTO platform.durable_steps (tenant_id, run_id, seq, kind, name, status, output, attempts, created_at)
SELECT ('7a1c1a8e-0000-4000-8000-' || lpad(to_hex(i % 50), 12, '0'))::uuid, 'done-' || i, s, 'step',
       (ARRAY['a', 'b', 'c'])[s], 'completed', '1', 1, now() - interval '40 days'
FROM generate_series($1::int, $2::int) AS i, generate_series(1, 3) AS s`, lo, hi)
		require.NoError(b, err)
	}
	analyze(b, db)
	b.Logf("filled %d completed runs in %v", size, time.Since(began).Round(time.Millisecond))
}

// analyze vacuums and analyzes durable's tables.
func analyze(b *testing.B, db *pgtest.DB) {
	for _, table := range []string{"durable_runs", "durable_steps", "durable_signals"} {
		_, err := db.Admin.Exec(context.Background(), "VACUUM ANALYZE platform."+table)
		require.NoError(b, err)
	}
}

// growthClaimSQL is the workers' claim query as durable/worker.go sends
// it (claimSQL), so that its plan and latency are the ones measured.
const growthClaimSQL = `
WITH due AS (
    SELECT tenant_id, id FROM platform.durable_runs
    WHERE ready_at <= now() AND status IN ('pending', 'running', 'sleeping', 'waiting') AND workflow = ANY($1)
    ORDER BY ready_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.durable_runs r
SET status = 'running', owner = $3, attempt = r.attempt + 1,
    lease_until = now() + $4::bigint * interval '1 microsecond',
    ready_at = now() + $4::bigint * interval '1 microsecond', updated_at = now()
FROM due WHERE r.tenant_id = due.tenant_id AND r.id = due.id
RETURNING r.tenant_id::text, r.id, r.workflow, r.input, r.attempt, r.wait_seq, r.wake_at, now()`

// claimWorkflow names the pending runs the claim is measured on; no
// runtime executes it.
const claimWorkflow = "claimed-by-nobody"

// withPending runs fn with 200 pending runs of claimWorkflow in the table.
func (g *growth) withPending(b *testing.B, fn func()) {
	ctx := context.Background()
	_, err := g.system.Exec(ctx, `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, ready_at, created_at, updated_at)
SELECT $1::uuid, 'pending-' || i, $2, 'pending', '1', now(), now(), now() FROM generate_series(1, 200) AS i`, tenant, claimWorkflow)
	require.NoError(b, err)
	defer func() {
		_, err := g.system.Exec(ctx, `DELETE FROM platform.durable_runs WHERE workflow = $1`, claimWorkflow)
		require.NoError(b, err)
	}()
	fn()
}

// claimLatency is the median time of 100 claims, in milliseconds.
func (g *growth) claimLatency(b *testing.B) float64 {
	ctx := context.Background()
	var all []float64
	g.withPending(b, func() {
		for range 100 {
			tx, err := g.system.Begin(ctx)
			require.NoError(b, err)
			start := time.Now()
			rows, err := tx.Query(ctx, growthClaimSQL, []string{claimWorkflow}, workers, "bench", int64(30_000_000))
			require.NoError(b, err)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(b, rows.Err())
			all = append(all, float64(time.Since(start).Microseconds())/1000)
			require.Equal(b, workers, n)
			require.NoError(b, tx.Rollback(ctx))
		}
	})
	return median(all)
}

// explainClaim is the claim's plan, executed and rolled back, trimmed of
// blank lines.
func (g *growth) explainClaim(b *testing.B) string {
	ctx := context.Background()
	var plan []string
	g.withPending(b, func() {
		tx, err := g.system.Begin(ctx)
		require.NoError(b, err)
		defer func() { _ = tx.Rollback(ctx) }()
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+growthClaimSQL,
			[]string{claimWorkflow}, workers, "bench", int64(30_000_000))
		require.NoError(b, err)
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(b, err)
	})
	return strings.Join(plan, "\n")
}

// stepsPerSecond runs n three-step workflows from 16 goroutines.
func (g *growth) stepsPerSecond(b *testing.B, n int) float64 {
	ctx := context.Background()
	s := fanOutN(b, n, func(i int) error {
		run, err := g.wf.StartForTenant(ctx, tenant, i)
		if err != nil {
			return err
		}
		out, err := g.wf.ResultForTenant(ctx, tenant, run.ID)
		if err == nil && out != i {
			err = fmt.Errorf("run %d returned %d", i, out)
		}
		return err
	})
	return 3 * float64(n) / s.took.Seconds()
}
