package bench

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
)

// How dlq's fetch-and-complete throughput grows with the rows already in
// its table. Each point works down -growth-jobs (20,000) no-op jobs,
// inserted in bulk beforehand, with the configuration of
// BenchmarkQueueWorkDown (Concurrency 2,000, FetchCooldown 2ms,
// PollInterval 20ms, workers on a 32-connection system-role pool), timed
// from the worker's Start to its Stop returning (the last completions
// stored). The rows already there are written by generate_series as the
// superuser, all of them in the benchmark's queue and tenant (the worst
// case for every index the claim and the completion touch):
//
//   - finished: 90% completed and 10% dead jobs, finalized an hour ago
//     (inside the default 24h retention, so the started client's sweeper
//     deletes none of them);
//   - finished + 10k scheduled: the same plus 10,000 available jobs due in
//     a day (in the claim's partial index, never due during the run);
//   - sweeper cost: completed jobs finalized two days ago (past the 24h
//     retention), worked with the client's sweeper on (Retention 24h,
//     the default: it sweeps at Start, 5,000 rows per statement) and off
//     (Retention ten years: its sweep deletes nothing), and on with
//     CleanupBatchPause (-growth-sweep-pause, 50ms) between its delete
//     batches. The table is filled again before each run the sweeper
//     emptied.
//
// Each point has a table of its own (in a database of its own). After each
// run its jobs are deleted and the table vacuumed and analyzed, so every
// run of a point starts from the same table; the runs take turns across
// all the points in a rotating order, so that the shared machine's drifts
// do not favour one size. Each point is the
// median of -growth-runs (3) runs, with their spread, and is published
// by bench.WriteCurve as results/dlq-throughput-growth.json and
// results/dlq-sweeper-cost.json (cmd/charts draws them). The plan of the
// claim (EXPLAIN ANALYZE of the fetch statement, rolled back) is logged at
// each size:
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkQueueGrowth -benchtime 1x -v -args -growth-runs=5
//
// With -short (the CI smoke form) the sizes are 0 and 1,000 rows and 100
// scheduled jobs, 300 jobs per run, one run each, and nothing is written.

var (
	growthJobs = flag.Int("growth-jobs", 20_000, "jobs worked down at each point of the queue growth benchmarks")
	growthRuns = flag.Int("growth-runs", 3, "runs of each point of the queue growth benchmarks")
	sweepPause = flag.Duration("growth-sweep-pause", 50*time.Millisecond, "the paced sweeper's CleanupBatchPause in the queue growth benchmark")
)

// claimSQL is dlq's fetch statement (dlq/worker.go, fetchSQL), explained at
// each size.
const claimSQL = `
UPDATE platform.dlq_jobs j
SET state = 'running', attempt = j.attempt + 1, claims = j.claims + 1, attempted_at = now(),
    lease_until = now() + $3::bigint * interval '1 microsecond'
WHERE j.id = ANY(ARRAY(
    SELECT id FROM platform.dlq_jobs
    WHERE state = 'available' AND queue = $1 AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.tenant_id::text, j.queue, j.kind, j.payload, j.priority, j.attempt, j.max_attempts,
          j.created_at, j.errors, j.claims`

// fillFinished writes n finished jobs, finalized age ago: nine in ten
// completed, one in ten dead.
func fillFinished(ctx context.Context, admin *pgxpool.Pool, n int, age time.Duration) error {
	_, err := admin.Exec(ctx, `
INSERT INTO platform.dlq_jobs (tenant_id, queue, state, attempt, max_attempts, claims, run_at, created_at, attempted_at, finalized_at)
SELECT $1::uuid, $2, CASE WHEN g % 10 = 0 THEN 'dead' ELSE 'completed' END, 1, 1, 1, t, t, t, t
FROM generate_series(1, $3::int) g, (SELECT now() - $4::bigint * interval '1 microsecond' AS t) n`,
		benchTenant, queueName, n, age.Microseconds())
	return err
}

// fillScheduled writes n available jobs due in a day.
func fillScheduled(ctx context.Context, admin *pgxpool.Pool, n int) error {
	_, err := admin.Exec(ctx, `
INSERT INTO platform.dlq_jobs (tenant_id, queue, max_attempts, run_at, created_at)
SELECT $1::uuid, $2, 10, now() + interval '1 day', now() FROM generate_series(1, $3::int)`,
		benchTenant, queueName, n)
	return err
}

// growthTable is one dlq database whose table holds a given fill.
type growthTable struct {
	db   *pgtest.DB
	side *dlqSide
}

func newGrowthTable(tb testing.TB) *growthTable {
	db := pgtest.New(tb)
	return &growthTable{db: db, side: newDLQSide(tb, db)}
}

// reset deletes every job and vacuums, then calls fill.
func (g *growthTable) reset(ctx context.Context, fill func(*pgxpool.Pool) error) error {
	if _, err := g.db.Admin.Exec(ctx, "TRUNCATE platform.dlq_jobs"); err != nil {
		return err
	}
	if err := fill(g.db.Admin); err != nil {
		return err
	}
	return g.vacuum(ctx)
}

func (g *growthTable) vacuum(ctx context.Context) error {
	_, err := g.db.Admin.Exec(ctx, "VACUUM (ANALYZE) platform.dlq_jobs")
	return err
}

// run inserts jobs, logs the claim's plan when explain is set, works them
// down with the sweeper's retention and returns the jobs/s; then it
// deletes the run's jobs (those above the fill's highest id) and vacuums.
func (g *growthTable) run(ctx context.Context, tb testing.TB, jobs int, retention, pause time.Duration, explain string) (float64, error) {
	var fillMax int64
	if err := g.db.Admin.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM platform.dlq_jobs").Scan(&fillMax); err != nil {
		return 0, err
	}
	if err := g.side.insertBulk(ctx, jobs); err != nil {
		return 0, err
	}
	if explain != "" {
		plan, err := explainClaim(ctx, g.db.Admin)
		if err != nil {
			return 0, err
		}
		tb.Logf("claim plan, %s:\n%s", explain, plan)
	}
	done := newCountdown(jobs)
	worker, err := dlq.NewClient(g.side.system, dlq.Config{
		Logger:        quietLogger(),
		PollInterval:  pollInterval,
		FetchCooldown: fetchCooldown,
		Retention:     retention,
		// The sweeper's pause between delete batches (0: none).
		CleanupBatchPause: cmp.Or(pause, dlq.NoBatchPause),
		Queues: map[string]dlq.QueueConfig{queueName: {
			Concurrency: benchWorkers,
			Handler:     dlq.HandlerFunc(func(context.Context, *dlq.Job) error { done.ran(); return nil }),
		}},
	})
	if err != nil {
		return 0, err
	}
	began := time.Now()
	if err := worker.Start(ctx); err != nil {
		return 0, err
	}
	if err := waitFor(ctx, done.done, worker.Stop); err != nil {
		return 0, err
	}
	if err := worker.Stop(ctx); err != nil {
		return 0, err
	}
	took := time.Since(began)
	var completed int
	if err := g.db.Admin.QueryRow(ctx, "SELECT count(*) FROM platform.dlq_jobs WHERE id > $1 AND state = 'completed'", fillMax).Scan(&completed); err != nil {
		return 0, err
	}
	if completed != jobs {
		return 0, fmt.Errorf("%d of %d jobs completed", completed, jobs)
	}
	if _, err := g.db.Admin.Exec(ctx, "DELETE FROM platform.dlq_jobs WHERE id > $1", fillMax); err != nil {
		return 0, err
	}
	return jobsPerSecond(jobs, took), g.vacuum(ctx)
}

// explainClaim runs the claim of 1,000 jobs under EXPLAIN ANALYZE in a
// transaction it rolls back, and returns the plan.
func explainClaim(ctx context.Context, admin *pgxpool.Pool) (string, error) {
	tx, err := admin.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+claimSQL, queueName, 1000, int64(90*time.Second/time.Microsecond))
	if err != nil {
		return "", err
	}
	var lines []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// growthSizes are the rows already in the table; scheduled is the number
// of future jobs of the scheduled series.
func growthSizes() (sizes []int, scheduled, jobs, runs int) {
	if testing.Short() {
		return []int{0, 1_000}, 100, 300, 1
	}
	return []int{0, 100_000, 1_000_000}, 10_000, *growthJobs, *growthRuns
}

const growthConfig = "dlq: Concurrency %d, FetchBatch %d, FetchCooldown %s, PollInterval %s, completions in batches of up to 1000; " +
	"workers on a %d-connection system-role pool; %d no-op jobs per run inserted beforehand (%d per statement); " +
	"table vacuumed and analyzed before each run; PostgreSQL 15 on the same machine"

// BenchmarkQueueGrowth measures dlq's work-down throughput with 0, 100k
// and 1M finished jobs already in the table, with and without 10k
// scheduled jobs, and with a table full of expired jobs with the sweeper
// on and off (see the comment at the top of this file).
func BenchmarkQueueGrowth(b *testing.B) {
	ctx := context.Background()
	sizes, scheduled, jobs, runs := growthSizes()
	cfg := fmt.Sprintf(growthConfig, benchWorkers, benchWorkers, fetchCooldown, pollInterval, dlqSystemConns, jobs, insertBatch)
	hour, twoDays, tenYears := time.Hour, 48*time.Hour, 10*365*24*time.Hour
	for b.Loop() {
		// One table per point, filled once (or before each run, where the
		// sweeper empties it); the runs then take turns across all the
		// points, in an order that rotates, so that the machine's drifts
		// spread over every point instead of favouring the first.
		type cell struct {
			series    *Series
			label     string
			x         int
			fill      func(*pgxpool.Pool) error
			retention time.Duration
			pause     time.Duration
			refill    bool
			table     *growthTable
			ys        []float64
		}
		finished := Series{Name: "finished jobs in the table"}
		withScheduled := Series{Name: fmt.Sprintf("finished jobs + %d scheduled", scheduled)}
		sweeperOff := Series{Name: "sweeper off"}
		sweeperOn := Series{Name: "sweeper on (deleting the expired rows)"}
		sweeperPaced := Series{Name: fmt.Sprintf("sweeper on, %s between delete batches", *sweepPause)}
		var cells []*cell
		for _, n := range sizes {
			cells = append(cells,
				&cell{series: &finished, label: "finished", x: n, fill: func(db *pgxpool.Pool) error {
					return fillFinished(ctx, db, n, hour)
				}},
				&cell{series: &withScheduled, label: "finished + scheduled", x: n, fill: func(db *pgxpool.Pool) error {
					if err := fillFinished(ctx, db, n, hour); err != nil {
						return err
					}
					return fillScheduled(ctx, db, scheduled)
				}},
				&cell{series: &sweeperOff, label: "expired, sweeper off", x: n, retention: tenYears, fill: func(db *pgxpool.Pool) error {
					return fillFinished(ctx, db, n, twoDays)
				}},
				&cell{series: &sweeperOn, label: "expired, sweeper on", x: n, refill: true, fill: func(db *pgxpool.Pool) error {
					return fillFinished(ctx, db, n, twoDays)
				}},
				&cell{series: &sweeperPaced, label: "expired, sweeper paced", x: n, refill: true, pause: *sweepPause, fill: func(db *pgxpool.Pool) error {
					return fillFinished(ctx, db, n, twoDays)
				}},
			)
		}
		for _, c := range cells {
			c.table = newGrowthTable(b)
			if !c.refill {
				if err := c.table.reset(ctx, c.fill); err != nil {
					b.Fatal(err)
				}
			}
		}
		for i := range runs {
			for k := range cells {
				c := cells[(k+i*len(cells)/runs)%len(cells)]
				if c.refill {
					if err := c.table.reset(ctx, c.fill); err != nil {
						b.Fatal(err)
					}
				}
				explain := ""
				if i == 0 && !testing.Short() {
					explain = fmt.Sprintf("%s, %d rows", c.label, c.x)
				}
				y, err := c.table.run(ctx, b, jobs, c.retention, c.pause, explain)
				if err != nil {
					b.Fatalf("%s at %d rows: %v", c.label, c.x, err)
				}
				c.ys = append(c.ys, y)
			}
		}
		for _, c := range cells {
			p := point(float64(c.x), c.ys)
			b.Logf("%s, %d rows: median %.0f jobs/s (%.0f to %.0f, %d runs)", c.label, c.x, p.Y, p.Lo, p.Hi, runs)
			c.series.Points = append(c.series.Points, p)
		}
		for _, s := range []Series{finished, withScheduled, sweeperOff, sweeperOn, sweeperPaced} {
			last, first := s.Points[len(s.Points)-1].Y, s.Points[0].Y
			b.ReportMetric(last/first, strings.ReplaceAll(s.Name, " ", "_")+"-largest/empty")
		}
		if testing.Short() {
			continue
		}
		command := fmt.Sprintf("cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkQueueGrowth -benchtime 1x -v -args -growth-runs=%d -growth-jobs=%d -growth-sweep-pause=%s", runs, jobs, *sweepPause)
		for _, c := range []Curve{{
			Name:   "dlq-throughput-growth",
			Title:  "dlq fetch-and-complete throughput as finished jobs accumulate",
			XLabel: "finished (90% completed, 10% dead) jobs already in the table",
			YLabel: "jobs/s (median, spread of runs)",
			LogX:   true, Config: cfg, Command: command,
			Series: []Series{finished, withScheduled},
		}, {
			Name:   "dlq-sweeper-cost",
			Title:  "dlq throughput with a table full of expired jobs, retention sweeper off, on, and on with a pause between batches",
			XLabel: "expired completed jobs in the table",
			YLabel: "jobs/s (median, spread of runs)",
			LogX:   true, Config: cfg + fmt.Sprintf("; sweeper: Retention 24h, 5000 rows per DELETE, sweeping at Start (off: Retention ten years; paced: CleanupBatchPause %s)", *sweepPause),
			Command: command,
			Series:  []Series{sweeperOff, sweeperOn, sweeperPaced},
		}} {
			if err := WriteCurve("results", c); err != nil {
				b.Fatal(err)
			}
		}
	}
}
