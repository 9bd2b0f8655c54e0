package idempotency_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
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
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// benchClients is the number of concurrent clients of the benchmarks.
const benchClients = 16

// BenchmarkPOST measures a POST that inserts one row, from 16 concurrent
// clients through a real HTTP server (httptest, loopback), with and without
// the middleware, and the replay path. Each reports requests per second and
// the p99 latency; "interleaved" runs the baseline, both modes and the
// control in alternating rounds of 1000 requests each and reports their
// throughput relative to the baseline:
//
//	go test -run '^$' -bench BenchmarkPOST/interleaved -benchtime 8x -count 3 ./idempotency/
//
// Configuration, the same for every contender: one pgxpool of the app role
// (row-level security binds it) with MaxConns 32, pgx's default statement
// cache, the store's defaults (TTL 24 h, lease 1 min), the database of
// DEALIX_TEST_DATABASE_URL (here a local PostgreSQL 15 with fsync and
// synchronous_commit off). Report tx/bare+row (tx-req/s ÷ bare+row-req/s),
// the median of the -count runs and their spread: on a shared machine a
// single run swings by ±10 %.
//
// The baseline ("bare") is the handler as an application writes it without
// the middleware: its own tenancy.InTx transaction, three round trips. The
// control "bare+row" is that handler writing, in the same transaction and
// round trip as its order, one more row shaped like a stored entry (same
// columns, CHECK constraints, indexes and row-level security), on the same
// pool and in the same kind of tenant transaction (tenancy.InTx: BEGIN and
// set_config in one round trip, the two inserts in a second, COMMIT in a
// third; transactional mode also spends three): the cost of the write the
// middleware cannot do without, so tx/bare+row is what the middleware adds
// beyond it (the key's lock and lookup, the fingerprint, capturing and
// encoding the response). The goal is tx/bare+row >= 0.95.
//
// The other sub-benchmarks, each contender alone (interleaved is left out:
// its b.N counts rounds of 4000 requests):
//
//	go test -run '^$' -bench 'BenchmarkPOST/(insert|bare|claim-mode|transactional)' -benchtime 2000x -benchmem ./idempotency/
func BenchmarkPOST(b *testing.B) {
	db := pgtest.New(b)
	createOrders(b, db)
	createEntryShapedTable(b, db)
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(b, err)
	cfg.MaxConns = 2 * benchClients
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
	require.NoError(b, err)
	quiet := slog.New(slog.DiscardHandler)
	claimMode, err := idempotency.NewMiddleware(store, idempotency.Config{Logger: quiet})
	require.NoError(b, err)
	txMode, err := idempotency.NewMiddleware(store, idempotency.Config{Logger: quiet, Transactional: true})
	require.NoError(b, err)

	var seq atomic.Int64
	uniqueKey := func() string { return "bench-" + strconv.FormatInt(seq.Add(1), 10) }

	b.Run("insert-no-http", func(b *testing.B) {
		runClients(b, func() error {
			return rls.InTx(context.Background(), pool, tenantA, func(tx pgx.Tx) error {
				_, err := tx.Exec(context.Background(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, '{}')", tenantA)
				return err
			})
		})
	})
	b.Run("bare", func(b *testing.B) {
		benchServer(b, withTenant(createOrder(pool)), func() string { return "" }, http.StatusCreated)
	})
	b.Run("claim-mode-first", func(b *testing.B) {
		benchServer(b, withTenant(claimMode.Handler(createOrder(pool))), uniqueKey, http.StatusCreated)
	})
	b.Run("transactional-first", func(b *testing.B) {
		benchServer(b, withTenant(txMode.Handler(createOrderInTx())), uniqueKey, http.StatusCreated)
	})
	b.Run("interleaved", func(b *testing.B) {
		benchInterleaved(b, []contender{
			{name: "bare", handler: withTenant(createOrder(pool)), key: func() string { return "" }},
			{name: "claim", handler: withTenant(claimMode.Handler(createOrder(pool))), key: uniqueKey},
			{name: "tx", handler: withTenant(txMode.Handler(createOrderInTx())), key: uniqueKey},
			{name: "bare+row", handler: withTenant(createOrderAndRow(pool, uniqueKey)), key: func() string { return "" }},
		})
	})
	b.Run("claim-mode-replay", func(b *testing.B) {
		benchServer(b, withTenant(claimMode.Handler(createOrder(pool))), func() string { return "replayed" }, http.StatusCreated)
	})
	b.Run("transactional-replay", func(b *testing.B) {
		benchServer(b, withTenant(txMode.Handler(createOrderInTx())), func() string { return "replayed-tx" }, http.StatusCreated)
	})
}

// BenchmarkStateChecks measures what the table's state checks (migration
// 003) cost, paired within one run against databases on the same server
// without them, served alternately round by round as in
// BenchmarkPOST/interleaved, so the machine's drift touches both alike.
//
//   - claim, tx: a first POST through the middleware from 16 clients;
//     "checks/no-checks" is a ratio of requests per second (below 1 is a
//     cost).
//   - store: Claim then Complete from one client, on four databases
//     created without, with, with, without the checks; "checks/no-checks"
//     is a ratio of time per operation (above 1 is a cost). It is the
//     sharper figure: no HTTP, no queueing, only the statements the checks
//     apply to, two commits each.
//
// Run it with
//
//	go test -run '^$' -bench BenchmarkStateChecks -benchtime 40x -count 4 ./idempotency/
func BenchmarkStateChecks(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	stack := func(dropChecks bool) (claimMode, txMode http.Handler) {
		db := pgtest.New(b)
		createOrders(b, db)
		if dropChecks {
			_, err := db.Owner.Exec(context.Background(), `ALTER TABLE platform.idempotency_keys
			    DROP CONSTRAINT idempotency_keys_in_progress_has_lease,
			    DROP CONSTRAINT idempotency_keys_completed_has_response`)
			require.NoError(b, err)
		}
		cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
		require.NoError(b, err)
		cfg.MaxConns = 2 * benchClients
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(b, err)
		b.Cleanup(pool.Close)
		store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
		require.NoError(b, err)
		claim, err := idempotency.NewMiddleware(store, idempotency.Config{Logger: quiet})
		require.NoError(b, err)
		tx, err := idempotency.NewMiddleware(store, idempotency.Config{Logger: quiet, Transactional: true})
		require.NoError(b, err)
		return withTenant(claim.Handler(createOrder(pool))), withTenant(tx.Handler(createOrderInTx()))
	}
	claimBare, txBare := stack(true)
	claimChecked, txChecked := stack(false)
	b.Run("store", func(b *testing.B) { benchStoreChecks(b) })
	var seq atomic.Int64
	uniqueKey := func() string { return "bench-" + strconv.FormatInt(seq.Add(1), 10) }
	b.Run("claim", func(b *testing.B) {
		benchInterleaved(b, []contender{
			{name: "no-checks", handler: claimBare, key: uniqueKey},
			{name: "checks", handler: claimChecked, key: uniqueKey},
		})
	})
	b.Run("tx", func(b *testing.B) {
		benchInterleaved(b, []contender{
			{name: "no-checks", handler: txBare, key: uniqueKey},
			{name: "checks", handler: txChecked, key: uniqueKey},
		})
	})
}

// benchStoreChecks is BenchmarkStateChecks without HTTP and from one
// client: Claim then Complete through the Store, on databases with the
// checks and without, alternating in blocks, so the checks' share of the
// library's own statements (two commits each) shows with less noise. Its
// "checks/no-checks" is a ratio of time per operation: above 1 is a cost.
func benchStoreChecks(b *testing.B) {
	ctx, err := tenancy.WithTenant(context.Background(), tenantA)
	require.NoError(b, err)
	newStore := func(dropChecks bool) *idempotency.Store {
		db := pgtest.New(b)
		if dropChecks {
			_, err := db.Owner.Exec(context.Background(), `ALTER TABLE platform.idempotency_keys
			    DROP CONSTRAINT idempotency_keys_in_progress_has_lease,
			    DROP CONSTRAINT idempotency_keys_completed_has_response`)
			require.NoError(b, err)
		}
		store, err := idempotency.NewStore(db.App, idempotency.StoreConfig{})
		require.NoError(b, err)
		return store
	}
	// Four databases created in the order without, with, with, without,
	// so that neither side gains from being created (and vacuumed) first.
	stores := []*idempotency.Store{newStore(true), newStore(false), newStore(false), newStore(true)}
	checked := []bool{false, true, true, false}
	var elapsed [2]time.Duration // [0]: without the checks, [1]: with
	var seq int
	fp := idempotency.FingerprintRequest(http.MethodPost, "/orders", "application/json", []byte("{}"))
	resp := idempotency.Response{Status: http.StatusCreated, Body: []byte(`{"id":1}`)}
	const block = 100
	b.ResetTimer()
	for round := range b.N {
		for j := range stores {
			i := (round + j) % len(stores)
			start := time.Now()
			for range block {
				seq++
				key := "store-" + strconv.Itoa(seq)
				claim, err := stores[i].Claim(ctx, key, fp)
				require.NoError(b, err)
				require.NoError(b, stores[i].Complete(ctx, key, claim.Token, resp))
			}
			side := 0
			if checked[i] {
				side = 1
			}
			elapsed[side] += time.Since(start)
		}
	}
	b.StopTimer()
	perOp := func(side int) float64 { return float64(elapsed[side].Microseconds()) / float64(2*b.N*block) }
	b.ReportMetric(perOp(0), "no-checks-µs/op")
	b.ReportMetric(perOp(1), "checks-µs/op")
	b.ReportMetric(perOp(1)/perOp(0), "checks/no-checks")
}

// createEntryShapedTable creates platform.bench_rows: the idempotency
// entry table's columns, CHECK constraints (PostgreSQL prepares them anew
// for every INSERT, a cost the store's own INSERT pays too), indexes and
// row-level security (rlspolicy.Apply), written by the application in the
// "bare+row" control of BenchmarkPOST.
func createEntryShapedTable(b *testing.B, db *pgtest.DB) {
	ctx := context.Background()
	_, err := db.Owner.Exec(ctx, `CREATE TABLE platform.bench_rows (LIKE platform.idempotency_keys INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`)
	require.NoError(b, err)
	require.NoError(b, rlspolicy.Apply(ctx, db.Owner, "platform.bench_rows"))
	_, err = db.Owner.Exec(ctx, `GRANT SELECT, INSERT ON platform.bench_rows TO `+pgtest.AppRole)
	require.NoError(b, err)
}

// createOrderAndRow is the baseline handler writing, besides its order, one
// row shaped like a stored idempotency entry, in the same transaction and
// round trip as the order: the control that shows what one more such write
// costs a request, whoever makes it.
func createOrderAndRow(pool *pgxpool.Pool, key func() string) http.Handler {
	fingerprint := make([]byte, 32)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tenant, _ := tenancy.TenantFrom(r.Context())
		now := time.Now()
		var id int64
		err := tenancy.InTx(r.Context(), pool, func(tx pgx.Tx) error {
			var batch pgx.Batch
			batch.Queue("INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, $2) RETURNING id",
				tenant, string(body)).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
			batch.Queue(`INSERT INTO platform.bench_rows
			    (tenant_id, key, fingerprint, state, response_status, response_headers, response_body,
			     body_omitted, created_at, completed_at, expires_at)
			    VALUES ($1, $2, $3, 'completed', 201, $4, $5, false, $6, $6, $7)`,
				tenant, key(), fingerprint, []byte(`{"Location":["/orders/1"],"Content-Type":["application/json"]}`),
				[]byte(`{"id":1}`), now, now.Add(24*time.Hour))
			return tx.SendBatch(r.Context(), &batch).Close()
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCreated(w, id)
	})
}

// benchServer serves h and sends b.N POSTs from benchClients clients, each
// with the key from key ("" for none).
func benchServer(b *testing.B, h http.Handler, key func() string, want int) {
	post := newPoster(b, h, key, want)
	require.NoError(b, post()) // warm up; stores the key a replay benchmark replays
	runClients(b, post)
}

// newPoster serves h and returns a function that sends it one POST with the
// key from key ("" for none), expecting status want.
func newPoster(b *testing.B, h http.Handler, key func() string, want int) func() error {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients}}
	b.Cleanup(client.CloseIdleConnections)
	return func() error {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(`{"sku":"x"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(tenantHeader, tenantA)
		if k := key(); k != "" {
			req.Header.Set(idempotency.HeaderName, k)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
}

// contender is one of the servers benchInterleaved compares.
type contender struct {
	name      string
	handler   http.Handler
	key       func() string
	post      func() error
	elapsed   time.Duration
	latencies []time.Duration
	cpuSelf   time.Duration // this process's CPU time while serving it
	cpuServer time.Duration // the database server's, when it is local
}

// interleavedRound is how many requests each contender serves per round.
const interleavedRound = 1000

// benchInterleaved compares contenders on equal terms: each of b.N rounds
// sends interleavedRound POSTs to every contender in turn, the order
// rotating from round to round, so the machine's drift during the run
// (caches warming, tables growing) touches all alike. It reports each
// contender's requests per second and p99, and their throughput relative
// to the first (the baseline); and the CPU time each request cost, this
// process's (server and clients) and the local database server's
// (cpuUsed), a steadier figure on a noisy machine than requests per
// second: "tx/bare+row-by-cpu" is the control's CPU per request over
// transactional mode's, the throughput ratio a machine saturated by these
// two alone would show.
func benchInterleaved(b *testing.B, cs []contender) {
	for i := range cs {
		cs[i].post = newPoster(b, cs[i].handler, cs[i].key, http.StatusCreated)
		require.NoError(b, cs[i].post())
	}
	b.ResetTimer()
	for round := range b.N {
		for j := range cs {
			c := &cs[(round+j)%len(cs)]
			start := time.Now()
			self0, server0 := cpuUsed()
			c.latencies = append(c.latencies, sendConcurrently(b, c.post, interleavedRound)...)
			self1, server1 := cpuUsed()
			c.elapsed += time.Since(start)
			c.cpuSelf += self1 - self0
			c.cpuServer += server1 - server0
		}
	}
	b.StopTimer()
	base := float64(len(cs[0].latencies)) / cs[0].elapsed.Seconds()
	rates := map[string]float64{}
	cpu := map[string]float64{}
	for _, c := range cs {
		rate := float64(len(c.latencies)) / c.elapsed.Seconds()
		rates[c.name] = rate
		b.ReportMetric(rate, c.name+"-req/s")
		b.ReportMetric(float64(p99(c.latencies).Microseconds()), c.name+"-p99-µs")
		n := float64(len(c.latencies))
		cpu[c.name] = float64((c.cpuSelf + c.cpuServer).Microseconds()) / n
		b.ReportMetric(float64(c.cpuSelf.Microseconds())/n, c.name+"-go-cpu-µs/req")
		b.ReportMetric(float64(c.cpuServer.Microseconds())/n, c.name+"-db-cpu-µs/req")
		if c.name != cs[0].name {
			b.ReportMetric(rate/base, c.name+"/"+cs[0].name)
		}
	}
	// The goal's figure: transactional mode against its control.
	if ctl, ok := rates["bare+row"]; ok && rates["tx"] > 0 {
		b.ReportMetric(rates["tx"]/ctl, "tx/bare+row")
	}
	if ctl, ok := cpu["bare+row"]; ok && cpu["tx"] > 0 {
		b.ReportMetric(ctl/cpu["tx"], "tx/bare+row-by-cpu")
	}
}

// sendConcurrently calls post n times from benchClients goroutines and
// returns the latencies.
func sendConcurrently(b *testing.B, post func() error, n int) []time.Duration {
	var (
		next      atomic.Int64
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, n)
		wg        sync.WaitGroup
	)
	for range benchClients {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := post(); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return latencies
}

func p99(latencies []time.Duration) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	return sorted[(len(sorted)*99)/100]
}

// runClients runs op b.N times from benchClients goroutines and reports
// throughput and the 99th percentile latency.
func runClients(b *testing.B, op func() error) {
	b.SetParallelism((benchClients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, b.N)
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 256)
		for pb.Next() {
			t0 := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99(latencies).Microseconds()), "p99-µs")
}
