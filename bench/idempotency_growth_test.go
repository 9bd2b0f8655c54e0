package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// idemTenant is the tenant the growth benchmark claims keys for; the
// stored entries are spread over 100 tenants, this one among them.
const idemTenant = "00000007-0000-4000-8000-000000000000"

// idemClients is the number of concurrent clients of the throughput
// figures, as in the idempotency package's own benchmarks.
const idemClients = 16

// BenchmarkIdempotencyGrowth measures how idempotency's costs grow with
// the entries stored in platform.idempotency_keys:
//
//   - claim latency (p50, p99) of Store.Claim for a new key from one
//     client, and claims per second (Claim then Complete) from 16 clients,
//     with 0, 100k and 1M completed, unexpired entries already stored
//     (spread over 100 tenants; the measured claims add about 18k more at
//     each size); the claim statement's plan (EXPLAIN
//     ANALYZE of the statement the store sends, captured by a pgx tracer)
//     is printed at each size;
//   - the Sweeper's time to expire 100k and 1M entries (SweepOnce on the
//     system role, default batch size: one DELETE of up to 1000 rows per
//     transaction), without a pause between batches (NoBatchPause) and
//     with each SweeperConfig.BatchPause of -idem-sweep-pauses (default
//     idempotency.DefaultSweepBatchPause, 100ms; the paced sweeps of 1M
//     once each, as their time is mostly the pauses);
//   - what the sweeper costs while requests run: claims per second from 16
//     clients with 1M expired entries stored, in windows taking turns
//     between the sweeper idle, the sweeper draining the backlog, and the
//     sweeper draining it with each pause. The backlog is topped up to 1M
//     expired entries (and the table vacuumed) before each window, so no
//     sweeper runs out of work within one.
//
// Each size is measured three times; the curves give the median and the
// spread. Configuration: one database on the shared PostgreSQL 15 server
// (fsync and synchronous_commit off here), the app role through a pool of
// 32 connections, the store's defaults (TTL 24 h, lease 1 min), the
// table filled with generate_series and then VACUUM ANALYZE. Run the long
// form by hand (a few minutes; it writes results/idempotency-*.json):
//
//	cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkIdempotencyGrowth -benchtime 1x -timeout 30m -v
//
// -idem-sweeper-only measures only the two sweeper curves and writes only
// results/idempotency-sweeper.json and results/idempotency-sweeper-cost.json;
// -idem-cost-only only the cost curve. -idem-cost-runs (3) and
// -idem-cost-window (3s) set the cost curve's windows.
//
// With -short (the CI smoke form) it uses 0 and 1000 entries, a few
// hundred claims, and writes nothing.
func BenchmarkIdempotencyGrowth(b *testing.B) {
	cfg := idemGrowthConfig{
		sizes: []int{0, 100_000, 1_000_000}, sweepSizes: []int{100_000, 1_000_000}, costBacklog: 1_000_000,
		runs: 3, costRuns: 3, latencyClaims: 2000, throughputClaims: 4000, window: 3 * time.Second,
	}
	if testing.Short() {
		cfg = idemGrowthConfig{
			sizes: []int{0, 1000}, sweepSizes: []int{1000}, costBacklog: 2000,
			runs: 3, costRuns: 3, latencyClaims: 50, throughputClaims: 100, window: 100 * time.Millisecond,
		}
	}
	for _, p := range strings.Split(*idemSweepPauses, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		d, err := time.ParseDuration(p)
		require.NoError(b, err, "-idem-sweep-pauses")
		cfg.pauses = append(cfg.pauses, d)
	}
	if !testing.Short() {
		cfg.costRuns, cfg.window = max(*idemCostRuns, 3), *idemCostWindow
	}
	for range b.N {
		g := newGrowthDB(b)
		var curves []Curve
		if !*idemSweeperOnly && !*idemCostOnly {
			claimLatency, claimRate := g.claimCurves(b, cfg)
			curves = append(curves, claimLatency, claimRate)
		}
		if !*idemCostOnly {
			curves = append(curves, g.sweepCurve(b, cfg))
		}
		curves = append(curves, g.sweepCostCurve(b, cfg))
		if !testing.Short() {
			for _, c := range curves {
				c.Command = growthCommand + fmt.Sprintf(" -args -idem-sweep-pauses=%s", *idemSweepPauses)
				switch {
				case *idemCostOnly:
					c.Command += fmt.Sprintf(" -idem-cost-only -idem-cost-runs=%d -idem-cost-window=%v", *idemCostRuns, *idemCostWindow)
				case *idemSweeperOnly:
					c.Command += " -idem-sweeper-only"
				}
				require.NoError(b, WriteCurve("results", c))
			}
		}
	}
}

var (
	idemSweepPauses = flag.String("idem-sweep-pauses", idempotency.DefaultSweepBatchPause.String(), "the paced Sweepers' BatchPause values in BenchmarkIdempotencyGrowth, comma-separated")
	idemSweeperOnly = flag.Bool("idem-sweeper-only", false, "BenchmarkIdempotencyGrowth measures the sweeper curves only")
	idemCostOnly    = flag.Bool("idem-cost-only", false, "BenchmarkIdempotencyGrowth measures the sweeper's cost curve only")
	idemCostRuns    = flag.Int("idem-cost-runs", 3, "windows of each mode in BenchmarkIdempotencyGrowth's sweeper-cost curve (at least 3)")
	idemCostWindow  = flag.Duration("idem-cost-window", 3*time.Second, "each window of BenchmarkIdempotencyGrowth's sweeper-cost curve")
)

type idemGrowthConfig struct {
	sizes, sweepSizes []int
	costBacklog       int
	runs              int
	costRuns          int // windows of each mode in the cost curve
	latencyClaims     int
	throughputClaims  int
	window            time.Duration
	pauses            []time.Duration // the paced sweepers' BatchPause
}

const growthCommand = "cd bench && GOFLAGS=-mod=mod go test -run '^$' -bench BenchmarkIdempotencyGrowth -benchtime 1x -timeout 30m -v"

const growthConfigText = "idempotency.Store defaults (TTL 24h, lease 1m) on the app role, pool of 32 connections; " +
	"PostgreSQL 15 on the same 2-core machine (fsync=off, synchronous_commit=off); entries filled with generate_series " +
	"over 100 tenants, then VACUUM ANALYZE; median of 3 runs, bars = min..max"

// growthDB is one database with the idempotency table, an app-role store
// whose claim statement a tracer captures, and the system role's pool.
type growthDB struct {
	db     *pgtest.DB
	pool   *pgxpool.Pool
	store  *idempotency.Store
	ctx    context.Context
	seq    atomic.Int64
	tracer *claimTracer
}

func newGrowthDB(b *testing.B) *growthDB {
	ctx := context.Background()
	db := pgtest.New(b)
	require.NoError(b, idempotency.Migrate(ctx, db.Owner))
	_, err := db.Owner.Exec(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON platform.idempotency_keys TO "+
		pgtest.AppRole+", "+pgtest.SystemRole)
	require.NoError(b, err)
	pcfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(b, err)
	pcfg.MaxConns = 2 * idemClients
	tracer := &claimTracer{}
	pcfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
	require.NoError(b, err)
	tctx, err := tenancy.WithTenant(ctx, idemTenant)
	require.NoError(b, err)
	return &growthDB{db: db, pool: pool, store: store, ctx: tctx, tracer: tracer}
}

// fill adds n entries numbered from first, completed and unexpired, or
// expired when expired is set, then vacuums and analyzes the table.
func (g *growthDB) fill(b *testing.B, first, n int, expired bool) {
	if n <= 0 {
		return
	}
	ctx := context.Background()
	created := "now() - ((i % 86400) * interval '1 second')" // over the last day
	expires := created + " + interval '1 day'"
	if expired {
		created = "now() - interval '2 days' - ((i % 86400) * interval '1 second')"
		expires = created + " + interval '1 day'"
	}
	// The superuser bypasses row-level security, so one statement fills
	// every tenant.
	_, err := g.db.Admin.Exec(ctx, `
		INSERT INTO platform.idempotency_keys
		    (tenant_id, key, fingerprint, state, response_status, response_headers, response_body,
		     body_omitted, created_at, completed_at, expires_at)
		SELECT (lpad(to_hex(i % 100), 8, '0') || '-0000-4000-8000-000000000000')::uuid,
		       'fill-' || i, sha256(i::text::bytea), 'completed', 201,
		       '{"Content-Type":["application/json"],"Location":["/orders/1"]}', '\x7b226964223a317d', false,
		       `+created+`, `+created+`, `+expires+`
		FROM generate_series($1::bigint, $2::bigint) AS i`, first, first+n-1)
	require.NoError(b, err)
	_, err = g.db.Admin.Exec(ctx, "VACUUM ANALYZE platform.idempotency_keys")
	require.NoError(b, err)
}

func (g *growthDB) count(b *testing.B) int {
	var n int
	require.NoError(b, g.db.System.QueryRow(context.Background(), "SELECT count(*) FROM platform.idempotency_keys").Scan(&n))
	return n
}

var growthFP = idempotency.FingerprintRequest(http.MethodPost, "/orders", "application/json", []byte(`{"sku":"x"}`))

func (g *growthDB) newKey() string { return "growth-" + strconv.FormatInt(g.seq.Add(1), 10) }

// claimAndComplete claims a new key and completes it, returning the
// claim's duration.
func (g *growthDB) claimAndComplete(b *testing.B) time.Duration {
	key := g.newKey()
	start := time.Now()
	claim, err := g.store.Claim(g.ctx, key, growthFP)
	took := time.Since(start)
	require.NoError(b, err)
	require.NotEmpty(b, claim.Token)
	require.NoError(b, g.store.Complete(g.ctx, key, claim.Token, idempotency.Response{
		Status: http.StatusCreated, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":1}`),
	}))
	return took
}

// claimsPerSecond runs n claims (each with its Complete) from idemClients
// goroutines, or as many as fit in window when n is 0, and returns the
// rate.
func (g *growthDB) claimsPerSecond(b *testing.B, n int, window time.Duration) float64 {
	var (
		done  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
	)
	for range idemClients {
		wg.Go(func() {
			for {
				if n > 0 && done.Add(1) > int64(n) {
					return
				}
				if n == 0 && time.Since(start) >= window {
					return
				}
				g.claimAndComplete(b)
				if n == 0 {
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := done.Load()
	if n > 0 {
		total = int64(n)
	}
	return float64(total) / elapsed.Seconds()
}

func (g *growthDB) claimCurves(b *testing.B, cfg idemGrowthConfig) (latency, rate Curve) {
	p50 := Series{Name: "p50 claim (ms)"}
	p99 := Series{Name: "p99 claim (ms)"}
	perSec := Series{Name: "claims/s (Claim+Complete, 16 clients)"}
	stored := 0
	for _, size := range cfg.sizes {
		g.fill(b, stored, size-stored, false)
		stored = size
		for range 50 { // warm the pool's connections and statements
			g.claimAndComplete(b)
		}
		g.explainClaim(b, size)
		var p50s, p99s, rates []float64
		for range cfg.runs {
			lat := make([]time.Duration, 0, cfg.latencyClaims)
			for range cfg.latencyClaims {
				lat = append(lat, g.claimAndComplete(b))
			}
			slices.Sort(lat)
			p50s = append(p50s, ms(lat[len(lat)/2]))
			p99s = append(p99s, ms(lat[len(lat)*99/100]))
			rates = append(rates, g.claimsPerSecond(b, cfg.throughputClaims, 0))
		}
		p50.Points = append(p50.Points, point(float64(size), p50s))
		p99.Points = append(p99.Points, point(float64(size), p99s))
		perSec.Points = append(perSec.Points, point(float64(size), rates))
		b.Logf("idempotency claim with %d stored entries (%d in the table): p50 %.3f ms %v, p99 %.3f ms %v, %.0f claims/s %v",
			size, g.count(b), median(p50s), p50s, median(p99s), p99s, median(rates), rates)
	}
	b.ReportMetric(p99.Points[len(p99.Points)-1].Y/p99.Points[0].Y, "p99-largest/empty")
	b.ReportMetric(perSec.Points[len(perSec.Points)-1].Y/perSec.Points[0].Y, "claims/s-largest/empty")
	latency = Curve{
		Name: "idempotency-claim-latency", Title: "idempotency: claim latency vs stored entries",
		XLabel: "stored entries", YLabel: "ms per Store.Claim (one client)", LogX: true,
		Config: growthConfigText, Command: growthCommand, Series: []Series{p50, p99},
	}
	rate = Curve{
		Name: "idempotency-claim-throughput", Title: "idempotency: claims per second vs stored entries",
		XLabel: "stored entries", YLabel: "claims/s", LogX: true,
		Config: growthConfigText, Command: growthCommand, Series: []Series{perSec},
	}
	return latency, rate
}

// explainClaim prints the plan of the claim statement the store sends, as
// the tracer captured it, run with its arguments for a new key in a
// transaction scoped to the tenant and rolled back.
func (g *growthDB) explainClaim(b *testing.B, size int) {
	sql, args := g.tracer.captured()
	require.NotEmpty(b, sql, "the tracer saw no claim statement")
	args = slices.Clone(args)
	args[1] = "explain-" + strconv.Itoa(size) // a new key, as the measured claims
	ctx := context.Background()
	var plan []string
	err := tenancy.InTx(g.ctx, g.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF) "+sql, args...)
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		return errRollback
	})
	require.ErrorIs(b, err, errRollback)
	b.Logf("EXPLAIN claim with %d stored entries:\n%s", size, strings.Join(plan, "\n"))
}

var errRollback = fmt.Errorf("rollback")

func (g *growthDB) sweepCurve(b *testing.B, cfg idemGrowthConfig) Curve {
	ctx := context.Background()
	sweeper, err := idempotency.NewSweeper(g.db.System, idempotency.SweeperConfig{BatchPause: idempotency.NoBatchPause})
	require.NoError(b, err)
	// Start from an empty table: the claims of the previous measurement
	// are not expired and would stay.
	_, err = g.db.Admin.Exec(ctx, "TRUNCATE platform.idempotency_keys")
	require.NoError(b, err)
	next := 0
	timeSweeps := func(s *idempotency.Sweeper, name string, runs func(size int) int) Series {
		secs := Series{Name: name}
		for _, size := range cfg.sweepSizes {
			var took []float64
			for range runs(size) {
				g.fill(b, next, size, true)
				next += size
				start := time.Now()
				n, err := s.SweepOnce(ctx)
				elapsed := time.Since(start)
				require.NoError(b, err)
				require.EqualValues(b, size, n)
				took = append(took, elapsed.Seconds())
			}
			secs.Points = append(secs.Points, point(float64(size), took))
			b.Logf("idempotency sweeper, %s: %d expired entries swept in %.2f s %v (%.0f entries/s)",
				name, size, median(took), took, float64(size)/median(took))
		}
		return secs
	}
	series := []Series{timeSweeps(sweeper, "seconds to sweep (batches of 1000, no pause)", func(int) int { return cfg.runs })}
	for _, pause := range cfg.pauses {
		paced, err := idempotency.NewSweeper(g.db.System, idempotency.SweeperConfig{BatchPause: pause})
		require.NoError(b, err)
		// The paced sweep of the largest size is mostly its pauses:
		// once is enough.
		series = append(series, timeSweeps(paced, fmt.Sprintf("the same, BatchPause %v", pause), func(size int) int {
			if size == cfg.sweepSizes[len(cfg.sweepSizes)-1] {
				return 1
			}
			return cfg.runs
		}))
	}
	return Curve{
		Name: "idempotency-sweeper", Title: "idempotency: time for the Sweeper to expire entries",
		XLabel: "expired entries", YLabel: "seconds (SweepOnce)", LogX: true,
		Config: growthConfigText + "; Sweeper on the system role, default BatchSize 1000 (one DELETE per transaction); " +
			"paced: SweeperConfig.BatchPause between batches, the largest size swept once",
		Command: growthCommand, Series: series,
	}
}

// sweepCostCurve measures claims per second with a backlog of expired
// entries, in windows that take turns between the sweeper idle, the
// sweeper draining the backlog (Run, which sweeps at once) and the paced
// sweepers draining it. Before each window the backlog is topped up to
// cfg.costBacklog expired entries and the table vacuumed, so every window
// starts from the same table and no sweeper runs out of work within one.
func (g *growthDB) sweepCostCurve(b *testing.B, cfg idemGrowthConfig) Curve {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	modes := []*idempotency.Sweeper{nil} // nil: idle
	names := []string{"sweeper idle", "sweeper draining, no pause"}
	for _, pause := range append([]time.Duration{idempotency.NoBatchPause}, cfg.pauses...) {
		s, err := idempotency.NewSweeper(g.db.System, idempotency.SweeperConfig{Interval: time.Hour, Logger: quiet, BatchPause: pause})
		require.NoError(b, err)
		modes = append(modes, s)
		if pause > 0 {
			names = append(names, fmt.Sprintf("sweeper draining, BatchPause %v", pause))
		}
	}
	_, err := g.db.Admin.Exec(ctx, "TRUNCATE platform.idempotency_keys")
	require.NoError(b, err)
	next := 0
	expired := func() int {
		var n int
		require.NoError(b, g.db.System.QueryRow(ctx,
			"SELECT count(*) FROM platform.idempotency_keys WHERE expires_at <= now()").Scan(&n))
		return n
	}
	rates := make([][]float64, len(modes))
	deletes := make([][]float64, len(modes))
	for run := range cfg.costRuns {
		for k := range modes {
			m := (run + k) % len(modes)
			top := cfg.costBacklog - expired()
			g.fill(b, next, top, true)
			next += max(top, 0)
			if top <= 0 {
				_, err := g.db.Admin.Exec(ctx, "VACUUM ANALYZE platform.idempotency_keys")
				require.NoError(b, err)
			}
			if modes[m] == nil {
				rates[m] = append(rates[m], g.claimsPerSecond(b, 0, cfg.window))
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			stopped := make(chan struct{})
			began := time.Now()
			go func() { defer close(stopped); _ = modes[m].Run(sctx) }()
			rates[m] = append(rates[m], g.claimsPerSecond(b, 0, cfg.window))
			cancel()
			<-stopped
			deletes[m] = append(deletes[m], float64(cfg.costBacklog-expired())/time.Since(began).Seconds())
		}
	}
	idle := median(rates[0])
	series := make([]Series, len(modes))
	for m := range modes {
		series[m] = Series{Name: names[m], Points: []Point{point(float64(cfg.costBacklog), rates[m])}}
		if m == 0 {
			continue
		}
		// Each run's own ratio too: the windows of a run are side by
		// side in time, so the machine's slower drifts cancel in them.
		paired := make([]float64, len(rates[0]))
		for r := range paired {
			paired[r] = rates[m][r] / rates[0][r]
		}
		b.Logf("idempotency sweeper cost, %s: %.0f claims/s %v, %.2f× idle's %.0f %v (per run: median %.2f %.2f); "+
			"%.0f entries deleted per second meanwhile %v",
			names[m], median(rates[m]), rates[m], median(rates[m])/idle, idle, rates[0], median(paired), paired,
			median(deletes[m]), deletes[m])
	}
	b.ReportMetric(median(rates[1])/idle, "claims/s-sweeping/idle")
	for m := 2; m < len(modes); m++ {
		b.ReportMetric(median(rates[m])/idle, fmt.Sprintf("claims/s-paced-%v/idle", cfg.pauses[m-2]))
	}
	return Curve{
		Name: "idempotency-sweeper-cost", Title: "idempotency: claims/s while the Sweeper drains a backlog",
		XLabel: "expired entries at the start", YLabel: "claims/s (Claim+Complete, 16 clients)",
		Config: strings.Replace(growthConfigText, "median of 3 runs", fmt.Sprintf("median of %d windows", cfg.costRuns), 1) +
			fmt.Sprintf("; %d windows of %v per mode", cfg.costRuns, cfg.window) +
			" taking turns: sweeper idle / draining (Run, default BatchSize 1000) / draining with each BatchPause; " +
			"backlog topped up to the start's and the table vacuumed before each window",
		Command: growthCommand,
		Series:  series,
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// claimTracer remembers the last claim statement (the INSERT into the
// idempotency table) a pool sent in a batch, with its arguments.
type claimTracer struct {
	mu   sync.Mutex
	sql  string
	args []any
}

func (t *claimTracer) captured() (string, []any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sql, t.args
}

func (t *claimTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (t *claimTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (t *claimTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (t *claimTracer) TraceBatchQuery(_ context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	if strings.Contains(data.SQL, "INSERT INTO platform.idempotency_keys") && strings.Contains(data.SQL, "in_progress") {
		t.mu.Lock()
		t.sql, t.args = data.SQL, data.Args
		t.mu.Unlock()
	}
}

func (t *claimTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
