package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// Peer: River (github.com/riverqueue/river with its pgx v5 driver), set up
// as River's own benchmark (cmd/river/riverbench) sets it up: one queue of
// 2,000 workers, FetchCooldown 2ms, FetchPollInterval 20ms, no-op jobs.
// dlq gets the same knobs: Concurrency 2,000, FetchCooldown 2ms,
// PollInterval 20ms. Both keep their retries and at-least-once delivery:
// River's default MaxAttempts (25), dlq's (10), leases and rescuers on.
//
// Each side has its own database on the same server: dlq in schema platform
// (workers as the system role, enqueue as the app role under RLS), River in
// schema "river", migrated with rivermigrate as the superuser. Each side's
// full configuration is logged next to its figures (run with -v or read
// the benchmark's log lines).
//
// Commits per job: each side's pg_stat_database.xact_commit delta around
// the timed part, divided by the jobs (reported as dlq-commits/job and
// river-commits/job). A backend publishes its counts when it exits, so the
// side's connections are closed before each reading and the worker pools
// opened again (connected, warm) before the timed part starts; the
// readings come from a third database's connection.
//
// Timing, as riverbench times River: from the worker's Start to the last
// job's completion being stored. River reports that through its
// completion events (sent after its completer committed). dlq has no such
// events, so its run ends when Stop returns, which waits for the last
// completions to be written; the few milliseconds Stop itself takes count
// against dlq.
//
// Order: the side that runs first meets a colder server and a table the
// other side has not yet grown. The two sides take turns across
// iterations and across -count runs (the round counters are package
// variables, which survive -count), and each log line says which ran
// first.

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(dlq.Migrate, durable.Migrate))
}

// queueJobs is the number of jobs per side in each queue benchmark
// iteration: go test … -args -queue-jobs=5000 for a quick run.
var queueJobs = flag.Int("queue-jobs", 50_000, "jobs per side in each queue benchmark iteration")

// Round counters of the two queue benchmarks: package variables, so the
// order keeps alternating across -count runs of one test binary.
var workDownRounds, insertAndWorkRounds atomic.Int64

const (
	benchWorkers                  = 2_000 // riverbench's MaxWorkers; dlq's Concurrency
	fetchCooldown                 = 2 * time.Millisecond
	pollInterval                  = 20 * time.Millisecond
	producers                     = 8 // goroutines enqueueing one job at a time in steady mode
	insertBatch                   = 5_000
	dlqSystemConns, dlqAppConns   = 32, 16 // dlq's worker and enqueue pools
	riverWorkConns, riverInsConns = 32, 16 // River's worker and insert pools
	riverSchema                   = "river"
	benchTenant                   = "11111111-1111-4111-8111-111111111111"
	queueName                     = "bench"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// noopArgs is River's job: no fields, nothing to do.
type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

// queueSide is one library under test, behind the steps both benchmarks
// need.
type queueSide interface {
	name() string
	// config states the side's workers, pools and batch sizes.
	config() string
	// insertBulk stores n jobs in batches, before any worker starts.
	insertBulk(ctx context.Context, n int) error
	// enqueueOne stores one job in its own transaction.
	enqueueOne(ctx context.Context) error
	// startWorkers starts a worker that calls done once per job: when its
	// completion is stored (River's completion events) or, when stopIsTimed,
	// when its handler returns (dlq).
	startWorkers(ctx context.Context, done func()) (stop func(context.Context) error, err error)
	// stopIsTimed reports that the run ends when stop returns, stop being
	// what waits for the last completions to be stored.
	stopIsTimed() bool
	// completed counts the jobs stored as completed.
	completed(ctx context.Context) (int, error)
	// db is the side's own database.
	db() *pgtest.DB
	// pools are the side's pools, closed before each commit count.
	pools() []*pgxpool.Pool
}

// newPool opens a pool of maxConns connections as role on db.
func newPool(tb testing.TB, db *pgtest.DB, role pgtest.Role, maxConns int32) *pgxpool.Pool {
	tb.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL(role))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// dlqSide works dlq: enqueue through the app role (RLS), work through the
// system role, each with its own pool.
type dlqSide struct {
	database    *pgtest.DB
	app, system *pgxpool.Pool
	enqueuer    *dlq.Client
}

func newDLQSide(tb testing.TB, db *pgtest.DB) *dlqSide {
	tb.Helper()
	s := &dlqSide{database: db, app: newPool(tb, db, pgtest.RoleApp, dlqAppConns), system: newPool(tb, db, pgtest.RoleSystem, dlqSystemConns)}
	var err error
	s.enqueuer, err = dlq.NewClient(s.app, dlq.Config{Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *dlqSide) name() string { return "dlq" }

func (s *dlqSide) db() *pgtest.DB { return s.database }

func (s *dlqSide) pools() []*pgxpool.Pool { return []*pgxpool.Pool{s.app, s.system} }

func (s *dlqSide) config() string {
	return fmt.Sprintf("dlq: Concurrency %d, FetchBatch %d (fetches once half a batch is free), FetchCooldown %s, PollInterval %s, "+
		"completions in batches of up to 1000; pools: workers %d conns (system role), enqueue %d conns (app role, RLS); "+
		"bulk insert %d jobs/statement", benchWorkers, benchWorkers, fetchCooldown, pollInterval, dlqSystemConns, dlqAppConns, insertBatch)
}

func (s *dlqSide) stopIsTimed() bool { return true }

func (s *dlqSide) insertBulk(ctx context.Context, n int) error {
	for done := 0; done < n; {
		batch := make([]dlq.JobParams, min(insertBatch, n-done))
		for i := range batch {
			batch[i] = dlq.JobParams{Queue: queueName}
		}
		if _, err := s.enqueuer.EnqueueManyForTenant(ctx, benchTenant, batch); err != nil {
			return err
		}
		done += len(batch)
	}
	return nil
}

func (s *dlqSide) enqueueOne(ctx context.Context) error {
	_, err := s.enqueuer.EnqueueForTenant(ctx, benchTenant, dlq.JobParams{Queue: queueName})
	return err
}

func (s *dlqSide) startWorkers(ctx context.Context, done func()) (func(context.Context) error, error) {
	worker, err := dlq.NewClient(s.system, dlq.Config{
		Logger:        quietLogger(),
		PollInterval:  pollInterval,
		FetchCooldown: fetchCooldown,
		Queues: map[string]dlq.QueueConfig{queueName: {
			Concurrency: benchWorkers,
			Handler:     dlq.HandlerFunc(func(context.Context, *dlq.Job) error { done(); return nil }),
		}},
	})
	if err != nil {
		return nil, err
	}
	if err := worker.Start(ctx); err != nil {
		return nil, err
	}
	return worker.Stop, nil
}

func (s *dlqSide) completed(ctx context.Context) (int, error) {
	var n int
	err := s.system.QueryRow(ctx, "SELECT count(*) FROM platform.dlq_jobs WHERE state = 'completed'").Scan(&n)
	return n, err
}

// riverSide works River in its own schema: an insert-only client over one
// pool, a working client over another, both as the superuser that ran
// River's migrations.
type riverSide struct {
	database     *pgtest.DB
	work, insert *pgxpool.Pool
	inserter     *river.Client[pgx.Tx]
}

func newRiverSide(tb testing.TB, db *pgtest.DB) *riverSide {
	tb.Helper()
	ctx := context.Background()
	if _, err := db.Admin.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+riverSchema); err != nil {
		tb.Fatal(err)
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(db.Admin), &rivermigrate.Config{Schema: riverSchema, Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		tb.Fatal(err)
	}
	s := &riverSide{database: db, work: newPool(tb, db, pgtest.RoleAdmin, riverWorkConns), insert: newPool(tb, db, pgtest.RoleAdmin, riverInsConns)}
	s.inserter, err = river.NewClient(riverpgxv5.New(s.insert), &river.Config{Logger: quietLogger(), Schema: riverSchema})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *riverSide) name() string { return "river" }

func (s *riverSide) db() *pgtest.DB { return s.database }

func (s *riverSide) pools() []*pgxpool.Pool { return []*pgxpool.Pool{s.work, s.insert} }

func (s *riverSide) config() string {
	return fmt.Sprintf("river: MaxWorkers %d (fetches up to the free worker slots), FetchCooldown %s, FetchPollInterval %s, "+
		"default batch completer; pools: workers %d conns, insert %d conns (superuser, no RLS); bulk insert %d jobs/InsertManyFast",
		benchWorkers, fetchCooldown, pollInterval, riverWorkConns, riverInsConns, insertBatch)
}

func (s *riverSide) stopIsTimed() bool { return false }

func (s *riverSide) insertBulk(ctx context.Context, n int) error {
	for done := 0; done < n; {
		batch := make([]river.InsertManyParams, min(insertBatch, n-done))
		for i := range batch {
			batch[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if _, err := s.inserter.InsertManyFast(ctx, batch); err != nil {
			return err
		}
		done += len(batch)
	}
	return nil
}

func (s *riverSide) enqueueOne(ctx context.Context) error {
	_, err := s.inserter.Insert(ctx, noopArgs{}, nil)
	return err
}

func (s *riverSide) startWorkers(ctx context.Context, done func()) (func(context.Context) error, error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error { return nil }))
	client, err := river.NewClient(riverpgxv5.New(s.work), &river.Config{
		Logger:            quietLogger(),
		Schema:            riverSchema,
		FetchCooldown:     fetchCooldown,
		FetchPollInterval: pollInterval,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: benchWorkers}},
		Workers:           workers,
	})
	if err != nil {
		return nil, err
	}
	// As riverbench: completion events, sent once the completer has
	// stored the completions, with a channel large enough to drop none.
	events, unsubscribe := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 2 * *queueJobs, Kinds: []river.EventKind{river.EventKindJobCompleted},
	})
	go func() {
		for range events {
			done()
		}
	}()
	if err := client.Start(ctx); err != nil {
		unsubscribe()
		return nil, err
	}
	return func(ctx context.Context) error {
		defer unsubscribe()
		return client.Stop(ctx)
	}, nil
}

func (s *riverSide) completed(ctx context.Context) (int, error) {
	var n int
	err := s.work.QueryRow(ctx, "SELECT count(*) FROM "+riverSchema+".river_job WHERE state = 'completed'").Scan(&n)
	return n, err
}

// countdown closes done when it has been called n times, and keeps the
// time of its n-th call.
type countdown struct {
	n     int64
	count atomic.Int64
	last  time.Time
	done  chan struct{}
}

func newCountdown(n int) *countdown {
	return &countdown{n: int64(n), done: make(chan struct{})}
}

func (c *countdown) ran() {
	if c.count.Add(1) == c.n {
		c.last = time.Now()
		close(c.done)
	}
}

// finish stops s's worker and returns the run's end: the last completion
// stored, by s's own means (see queueSide.stopIsTimed).
func finish(ctx context.Context, s queueSide, jobs *countdown, stop func(context.Context) error) (time.Time, error) {
	if err := stop(ctx); err != nil {
		return time.Time{}, fmt.Errorf("%s: stop: %w", s.name(), err)
	}
	if s.stopIsTimed() {
		return time.Now(), nil
	}
	return jobs.last, nil
}

// workDown times s working down n jobs stored beforehand, from its
// worker's Start to the last completion stored. It checks that every job
// is stored as completed.
func workDown(ctx context.Context, obs *pgxpool.Pool, s queueSide, n int) (time.Duration, int64, error) {
	if err := s.insertBulk(ctx, n); err != nil {
		return 0, 0, fmt.Errorf("%s: insert: %w", s.name(), err)
	}
	before, err := settledCommits(ctx, obs, s)
	if err != nil {
		return 0, 0, err
	}
	jobs := newCountdown(n)
	began := time.Now()
	stop, err := s.startWorkers(ctx, jobs.ran)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: start: %w", s.name(), err)
	}
	if err := waitFor(ctx, jobs.done, stop); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", s.name(), err)
	}
	end, err := finish(ctx, s, jobs, stop)
	if err != nil {
		return 0, 0, err
	}
	after, err := settledCommits(ctx, obs, s)
	if err != nil {
		return 0, 0, err
	}
	return end.Sub(began), after - before, checkCompleted(ctx, s, n)
}

// steadyRun is one side's figures of one steady-mode run.
type steadyRun struct {
	took time.Duration // first enqueue to last completion stored
	// tail is the part of took after the last enqueue returned: the jobs
	// the worker had not yet caught up with. A worker that keeps up with
	// the producers leaves a tail of about one fetch and one completion.
	tail      time.Duration
	latencies []time.Duration // of the enqueues, sorted
	commits   int64
}

// insertAndWork times s in steady mode: producers enqueue n jobs one at a
// time while its worker runs them, from the first enqueue to the last
// completion stored.
func insertAndWork(ctx context.Context, obs *pgxpool.Pool, s queueSide, n int) (steadyRun, error) {
	before, err := settledCommits(ctx, obs, s)
	if err != nil {
		return steadyRun{}, err
	}
	jobs := newCountdown(n)
	stop, err := s.startWorkers(ctx, jobs.ran)
	if err != nil {
		return steadyRun{}, fmt.Errorf("%s: start: %w", s.name(), err)
	}
	latencies := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	began := time.Now()
	for range producers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				t := time.Now()
				if err := s.enqueueOne(ctx); err != nil {
					errs <- err
					return
				}
				latencies[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	enqueued := time.Now()
	close(errs)
	if err := <-errs; err != nil {
		_ = stop(ctx)
		return steadyRun{}, fmt.Errorf("%s: enqueue: %w", s.name(), err)
	}
	if err := waitFor(ctx, jobs.done, stop); err != nil {
		return steadyRun{}, fmt.Errorf("%s: %w", s.name(), err)
	}
	end, err := finish(ctx, s, jobs, stop)
	if err != nil {
		return steadyRun{}, err
	}
	after, err := settledCommits(ctx, obs, s)
	if err != nil {
		return steadyRun{}, err
	}
	slices.Sort(latencies)
	run := steadyRun{took: end.Sub(began), tail: max(end.Sub(enqueued), 0), latencies: latencies, commits: after - before}
	return run, checkCompleted(ctx, s, n)
}

// settledCommits closes every connection to s's database, waits for the
// backends to exit (which publishes their counts) and returns the
// database's xact_commit, read through obs (another database). It then
// opens s's pools again, every connection, so the timed part that follows
// does not pay for connecting.
func settledCommits(ctx context.Context, obs *pgxpool.Pool, s queueSide) (int64, error) {
	db := s.db()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		// Again at each turn: a connection taken after a Reset (dlq's
		// notifier sends its NOTIFY from a goroutine of its own) goes back
		// to the pool open.
		for _, p := range append(s.pools(), db.Admin, db.Owner, db.App, db.System) {
			p.Reset()
		}
		var open int
		if err := obs.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'", db.Name).Scan(&open); err != nil {
			return 0, fmt.Errorf("%s: backends: %w", s.name(), err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: %d connections still open", s.name(), open)
		}
	}
	var commits int64
	if err := obs.QueryRow(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", db.Name).Scan(&commits); err != nil {
		return 0, fmt.Errorf("%s: xact_commit: %w", s.name(), err)
	}
	for _, p := range s.pools() {
		if err := warm(ctx, p); err != nil {
			return 0, fmt.Errorf("%s: connect: %w", s.name(), err)
		}
	}
	return commits, nil
}

// warm opens every connection of p.
func warm(ctx context.Context, p *pgxpool.Pool) error {
	conns := make([]*pgxpool.Conn, 0, p.Config().MaxConns)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range p.Config().MaxConns {
		c, err := p.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}

// waitFor waits until every job has run, or stops the worker when ctx
// ends first.
func waitFor(ctx context.Context, allRan <-chan struct{}, stop func(context.Context) error) error {
	select {
	case <-allRan:
		return nil
	case <-ctx.Done():
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stop(stopCtx)
		return fmt.Errorf("not every job ran: %w", ctx.Err())
	}
}

func checkCompleted(ctx context.Context, s queueSide, want int) error {
	got, err := s.completed(ctx)
	if err != nil {
		return fmt.Errorf("%s: count: %w", s.name(), err)
	}
	if got != want {
		return fmt.Errorf("%s: %d jobs completed, want %d", s.name(), got, want)
	}
	return nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[(len(sorted)-1)*p/100]
}

// sides makes both libraries on one fresh database; order alternates with
// round so neither side always runs on a warmer server.
func sides(tb testing.TB, round int64) ([]queueSide, *pgxpool.Pool) {
	both := []queueSide{newDLQSide(tb, pgtest.New(tb)), newRiverSide(tb, pgtest.New(tb))}
	if round%2 == 1 {
		slices.Reverse(both)
	}
	return both, pgtest.New(tb).Admin
}

// logRound states the order of one round and, on the first, each side's
// configuration, beside the figures the benchmark reports.
func logRound(b *testing.B, round int64, both []queueSide, jobs int) {
	if round == 0 {
		for _, s := range both {
			b.Log(s.config())
		}
	}
	b.Logf("round %d: %d jobs per side, %s first", round, jobs, both[0].name())
}

func jobsPerSecond(jobs int, took time.Duration) float64 {
	return float64(jobs) / took.Seconds()
}

// BenchmarkQueueWorkDown works down 50,000 (-queue-jobs) no-op jobs
// inserted in bulk beforehand, once per side per iteration, and reports
// each side's jobs/s, their ratio (dlq / River) and each side's commits
// per job. The figures (median of three runs, the machine shared by no
// other benchmark):
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench 'BenchmarkQueue(WorkDown|InsertAndWork)' -benchtime 1x -count 3 -v
//
// While developing, -args -queue-jobs=10000 runs each in seconds.
func BenchmarkQueueWorkDown(b *testing.B) {
	ctx := context.Background()
	n := *queueJobs
	took := map[string]time.Duration{}
	commits := map[string]int64{}
	for b.Loop() {
		round := workDownRounds.Add(1) - 1
		both, obs := sides(b, round)
		logRound(b, round, both, n)
		for _, s := range both {
			d, c, err := workDown(ctx, obs, s, n)
			if err != nil {
				b.Fatal(err)
			}
			took[s.name()] += d
			commits[s.name()] += c
		}
	}
	reportPair(b, took["dlq"], took["river"], b.N*n)
	reportCommits(b, commits, b.N*n)
}

// BenchmarkQueueInsertAndWork is the steady mode: 8 producers enqueue
// 50,000 (-queue-jobs) jobs one at a time while a worker runs them, once
// per side per iteration; it reports each side's end-to-end jobs/s, their
// ratio (dlq / River), each side's enqueue latency p50 and p99, its
// commits per job and its tail (the mean time from the last enqueue to
// the last completion stored: how far the worker fell behind). Command:
// see BenchmarkQueueWorkDown.
func BenchmarkQueueInsertAndWork(b *testing.B) {
	ctx := context.Background()
	n := *queueJobs
	took := map[string]time.Duration{}
	tails := map[string]time.Duration{}
	latencies := map[string][]time.Duration{}
	commits := map[string]int64{}
	for b.Loop() {
		round := insertAndWorkRounds.Add(1) - 1
		both, obs := sides(b, round)
		logRound(b, round, both, n)
		for _, s := range both {
			run, err := insertAndWork(ctx, obs, s, n)
			if err != nil {
				b.Fatal(err)
			}
			took[s.name()] += run.took
			tails[s.name()] += run.tail
			commits[s.name()] += run.commits
			latencies[s.name()] = append(latencies[s.name()], run.latencies...)
		}
	}
	reportPair(b, took["dlq"], took["river"], b.N*n)
	reportCommits(b, commits, b.N*n)
	for name, tail := range tails {
		b.ReportMetric(float64(tail.Microseconds())/1000/float64(b.N), name+"-tail-ms")
	}
	for name, lat := range latencies {
		slices.Sort(lat)
		b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, name+"-p50-enqueue-ms")
		b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, name+"-p99-enqueue-ms")
	}
}

// reportCommits reports each side's commits per job.
func reportCommits(b *testing.B, commits map[string]int64, jobs int) {
	for name, c := range commits {
		b.ReportMetric(float64(c)/float64(jobs), name+"-commits/job")
	}
}

// reportPair reports both sides' jobs/s and their ratio.
func reportPair(b *testing.B, dlqTook, riverTook time.Duration, jobs int) {
	ours, theirs := jobsPerSecond(jobs, dlqTook), jobsPerSecond(jobs, riverTook)
	b.ReportMetric(ours, "dlq-jobs/s")
	b.ReportMetric(theirs, "river-jobs/s")
	b.ReportMetric(ours/theirs, "dlq/river")
}

// TestQueuesCompleteEveryJob runs both modes of both libraries at 2,000
// jobs and checks every job is stored as completed on each side.
func TestQueuesCompleteEveryJob(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	const n = 2_000
	both, obs := sides(t, 0)
	for _, s := range both {
		t.Run(s.name()+"/work-down", func(t *testing.T) {
			_, commits, err := workDown(ctx, obs, s, n)
			if err != nil {
				t.Fatal(err)
			}
			if commits <= 0 {
				t.Fatalf("%d commits counted for %d jobs", commits, n)
			}
		})
	}
	both, obs = sides(t, 1)
	for _, s := range both {
		t.Run(s.name()+"/insert-and-work", func(t *testing.T) {
			run, err := insertAndWork(ctx, obs, s, n)
			if err != nil {
				t.Fatal(err)
			}
			if lat := run.latencies; len(lat) != n || lat[0] <= 0 {
				t.Fatalf("%d latencies, shortest %v: want %d positive", len(lat), lat[0], n)
			}
			if run.tail > run.took {
				t.Fatalf("tail %v longer than the run %v", run.tail, run.took)
			}
		})
	}
}
