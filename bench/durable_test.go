package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/jackc/pgx/v5"
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

// side is one library's figures in one benchmark run.
type side struct {
	took     time.Duration
	p50, p99 float64 // milliseconds per workflow
	// commits counts the transactions the side's database committed
	// during its warm-up, its timed part and its shutdown: statistics a
	// busy backend has not flushed yet (it flushes at most once a second)
	// are only certain to be counted once it exits.
	commits int64
	// serverCPU and clientCPU are the processor time the side's database
	// backends and this process spent during the timed part: unlike the
	// rates, they hardly move when other work shares the machine.
	serverCPU, clientCPU time.Duration
}

// cpuUsage is a reading of the processor time spent by the backends
// serving database name (by process id) and by this process.
type cpuUsage struct {
	backends map[int]time.Duration
	self     time.Duration
}

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// readCPU reads the processor time of database name's backends (from
// /proc, as PostgreSQL runs on this machine) and of this process.
func readCPU(tb testing.TB, name string) cpuUsage {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(tb, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, name)
	require.NoError(tb, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(tb, err)
	u := cpuUsage{backends: map[int]time.Duration{}}
	for _, pid := range pids {
		if t, ok := procCPU(fmt.Sprintf("/proc/%d/stat", pid)); ok {
			u.backends[int(pid)] = t
		}
	}
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return u
}

// procCPU returns utime+stime of a /proc/PID/stat file.
func procCPU(path string) (time.Duration, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	// The fields after the command name (which may hold spaces) in
	// parentheses: state is the first, utime the 12th, stime the 13th.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	user, err1 := strconv.ParseInt(fields[11], 10, 64)
	system, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(user+system) * clockTick, true
}

// since returns the backends' and this process's processor time since
// before (a backend that began meanwhile counts whole).
func (u cpuUsage) since(before cpuUsage) (server, client time.Duration) {
	for pid, t := range u.backends {
		server += t - before.backends[pid]
	}
	return server, u.self - before.self
}

// xactCommits reads pg_stat_database.xact_commit of database name through
// a connection to the server's administrative database, so that reading
// it commits nothing in name.
// analyzeAll gathers the statistics of every table of db, as a database in
// service has them. Without it, a side's statements are planned, and their
// plans cached per connection (foreign key checks included), on tables the
// planner believes empty, and they keep those plans until autovacuum
// analyzes the tables: up to a minute later, after the timed part has run
// on whichever index the planner happened to pick. Both sides get it after
// their warm-up.
func analyzeAll(tb testing.TB, db *pgtest.DB) {
	tb.Helper()
	_, err := db.Admin.Exec(context.Background(), "ANALYZE")
	require.NoError(tb, err)
}

func xactCommits(tb testing.TB, name string) int64 {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(tb, err)
	defer conn.Close(ctx)
	var n int64
	require.NoError(tb, conn.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, name).Scan(&n))
	return n
}

// commitsSince closes the side's connections (a backend flushes its
// statistics when it exits; an idle one may hold them for up to 10 s),
// waits until no backend is left on database name and returns how many
// transactions it committed since before.
func commitsSince(tb testing.TB, name string, before int64, closeSide func()) int64 {
	tb.Helper()
	closeSide()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(tb, err)
	defer conn.Close(ctx)
	for range 500 {
		var backends int
		require.NoError(tb, conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, name).Scan(&backends))
		if backends == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return xactCommits(tb, name) - before
}

// fanOut runs one workflow b.N times from 16 goroutines, timing only
// that.
func fanOut(b *testing.B, one func(i int) error) side {
	b.StartTimer()
	s := fanOutN(b, b.N, one)
	b.StopTimer()
	return s
}

// fanOutN runs one workflow n times from 16 goroutines.
func fanOutN(tb testing.TB, n int, one func(i int) error) side {
	var next atomic.Int64
	lat := &latencies{}
	var wg sync.WaitGroup
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				start := time.Now()
				if err := one(i); err != nil {
					tb.Error(err)
					return
				}
				lat.add(time.Since(start))
			}
		})
	}
	wg.Wait()
	took := time.Since(began)
	slices.Sort(lat.all)
	pct := func(p float64) float64 {
		if len(lat.all) == 0 {
			return 0
		}
		return float64(lat.all[int(p*float64(len(lat.all)-1))].Microseconds()) / 1000
	}
	return side{took: took, p50: pct(0.5), p99: pct(0.99)}
}

// warmUp is how many workflows each side runs before its timed part, so
// that neither is timed opening connections and preparing statements.
const warmUp = 400

// The workflow comparison's configuration, stated with its figures:
//
//   - both sides: 16 client goroutines, each starting a workflow of three
//     no-op steps and waiting for its result, every checkpoint committed
//     before the next step; a fresh database of the same server per side;
//     20 database connections in all per side; 400 untimed workflows
//     first (warm-up), then b.N timed.
//   - durable: Concurrency 16, PollInterval 10ms; an App pool of 16
//     connections (serving role, under RLS: starts, checkpoints, results)
//     and a System pool of 4 (BYPASSRLS: claims, lease renewal); starts
//     through the runtime execute at once in its free slots, and the
//     checkpoints of runs executing together share a commit.
//   - DBOS Go SDK v1.8.0: RunWorkflow on one SystemDBPool of 20
//     connections (the superuser, as DBOS creates its own schema).
//
// Commits per workflow: pg_stat_database.xact_commit of the side's own
// database, read (from another database) before the warm-up and again
// once the side stopped and its connections closed (a backend flushes its
// statistics at most once a second while busy, and surely when it exits),
// divided by the workflows run (warm-up and timed). Everything the side's
// database committed counts: starts, checkpoints, results, polls, and
// DBOS's own bookkeeping.
//
// Processor time per workflow (db-cpu-us/wf, go-cpu-us/wf): the CPU time
// of the side's database backends (read from /proc, PostgreSQL running on
// this machine) and of the benchmark's process over the timed part,
// divided by its workflows. Other work on the machine moves the rates a
// lot and these figures little, so they show what a change to either side
// costs even on a busy machine.
//
// Run it (the figures of one run are side by side; report the median of
// three):
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkThreeSteps -benchtime 10000x -count 3
const (
	durableAppConns    = 16
	durableSystemConns = 4
	dbosConns          = durableAppConns + durableSystemConns
)

// threeStepsRuns alternates which side runs first from one run of the
// benchmark to the next (-count), so neither always meets a colder or
// warmer server.
var threeStepsRuns atomic.Int64

// BenchmarkThreeSteps runs a workflow of three no-op steps b.N times from
// 16 goroutines with each library, one after the other in the same run,
// and reports each side's workflows/s, steps/s, p50/p99 per workflow and
// commits per workflow, the ratios durable/dbos (of workflows/s) and
// dbos-p99/durable-p99, the connections each side had and which side ran
// first (durable-first: 1 or 0).
func BenchmarkThreeSteps(b *testing.B) {
	b.StopTimer()
	sides := []struct {
		name string
		run  func(b *testing.B) side
	}{{"durable", benchDurable}, {"dbos", benchDBOS}}
	durableFirst := 1.0
	// The probe run with b.N = 1 that precedes each measured one does not
	// count, or every measured run would start with the same side.
	if b.N > 1 && threeStepsRuns.Add(1)%2 == 0 {
		slices.Reverse(sides)
		durableFirst = 0
	}
	got := map[string]side{}
	for _, s := range sides {
		got[s.name] = s.run(b)
	}
	rate := func(name string) float64 { return float64(b.N) / got[name].took.Seconds() }
	for _, name := range []string{"durable", "dbos"} {
		b.ReportMetric(rate(name), name+"-workflows/s")
		b.ReportMetric(3*rate(name), name+"-steps/s")
		b.ReportMetric(got[name].p50, name+"-p50-ms")
		b.ReportMetric(got[name].p99, name+"-p99-ms")
		b.ReportMetric(float64(got[name].commits)/float64(warmUp+b.N), name+"-commits/wf")
		b.ReportMetric(float64(got[name].serverCPU.Microseconds())/float64(b.N), name+"-db-cpu-us/wf")
		b.ReportMetric(float64(got[name].clientCPU.Microseconds())/float64(b.N), name+"-go-cpu-us/wf")
	}
	b.ReportMetric(rate("durable")/rate("dbos"), "durable/dbos")
	b.ReportMetric(got["dbos"].p99/got["durable"].p99, "dbos-p99/durable-p99")
	b.ReportMetric(dbosConns, "conns-each")
	b.ReportMetric(durableFirst, "durable-first")
}

// runThreeSteps starts durable's side of the comparison on db: a runtime
// over its App and System pools running the three-step workflow. stop ends
// the runtime and closes both pools.
func runThreeSteps(b *testing.B, db *pgtest.DB) (wf *durable.Workflow[int, int], stop func()) {
	app := newPool(b, db, pgtest.RoleApp, durableAppConns)
	system := newPool(b, db, pgtest.RoleSystem, durableSystemConns)
	rt, err := durable.New(durable.Config{App: app, System: system, Concurrency: workers,
		PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	wf, err = durable.Register(rt, "three", func(ctx context.Context, in int) (int, error) {
		for _, name := range []string{"a", "b", "c"} {
			if _, err := durable.Step(ctx, name, noop); err != nil {
				return 0, err
			}
		}
		return in, nil
	})
	require.NoError(b, err)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(runCtx) }()
	return wf, func() {
		cancel()
		<-done
		app.Close()
		system.Close()
	}
}

func benchDurable(b *testing.B) side {
	db := pgtest.New(b)
	wf, stop := runThreeSteps(b, db)
	closeSide := sync.OnceFunc(stop) // commitsSince closes the side early
	defer closeSide()
	ctx := context.Background()
	one := func(i int) error {
		run, err := wf.StartForTenant(ctx, tenant, i)
		if err != nil {
			return err
		}
		out, err := wf.ResultForTenant(ctx, tenant, run.ID)
		if err == nil && out != i {
			err = fmt.Errorf("run %d returned %d", i, out)
		}
		return err
	}
	return measureSide(b, db, one, closeSide)
}

// BenchmarkDurableThreeSteps runs durable's side of BenchmarkThreeSteps
// alone, with the same configuration, for comparing two versions of the
// package side by side (build each with go test -c and alternate them).
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkDurableThreeSteps -benchtime 3000x -count 3
func BenchmarkDurableThreeSteps(b *testing.B) {
	b.StopTimer()
	s := benchDurable(b)
	b.ReportMetric(3*float64(b.N)/s.took.Seconds(), "steps/s")
	b.ReportMetric(s.p50, "p50-ms")
	b.ReportMetric(s.p99, "p99-ms")
	b.ReportMetric(float64(s.commits)/float64(warmUp+b.N), "commits/wf")
	b.ReportMetric(float64(s.serverCPU.Microseconds())/float64(b.N), "db-cpu-us/wf")
	b.ReportMetric(float64(s.clientCPU.Microseconds())/float64(b.N), "go-cpu-us/wf")
}

// measureSide runs one side of the comparison on db: the untimed warm-up,
// ANALYZE (analyzeAll), then the timed workflows, with the processor time
// and the commits they took; closeSide ends the side's connections so that
// their statistics are flushed.
func measureSide(b *testing.B, db *pgtest.DB, one func(int) error, closeSide func()) side {
	before := xactCommits(b, db.Name)
	fanOutN(b, warmUp, one)
	analyzeAll(b, db)
	cpu := readCPU(b, db.Name)
	s := fanOut(b, one)
	s.serverCPU, s.clientCPU = readCPU(b, db.Name).since(cpu)
	s.commits = commitsSince(b, db.Name, before, closeSide)
	return s
}

func benchDBOS(b *testing.B) side {
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
	stopped := false
	closeSide := func() {
		if !stopped {
			stopped = true
			_ = dbos.Shutdown(dctx, 10*time.Second)
			pool.Close()
		}
	}
	defer closeSide()
	one := func(i int) error {
		h, err := dbos.RunWorkflow(dctx, three, i)
		if err != nil {
			return err
		}
		out, err := h.GetResult()
		if err == nil && out != i {
			err = fmt.Errorf("run %d returned %d", i, out)
		}
		return err
	}
	return measureSide(b, db, one, closeSide)
}
