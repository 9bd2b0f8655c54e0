package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
// the p99 latency; "interleaved" runs the baseline, both modes, the
// control and the two hand-written contenders below in alternating rounds
// of 1000 requests each and reports their throughput relative to the
// baseline:
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
// Two hand-written contenders split that figure in three:
//
//   - "minimum" is the control plus the lock and lookup of its key in the
//     round trip that begins its transaction, as transactional mode does
//     them on the database (createOrderAfterLookup): minimum/bare+row is
//     what checking a key before the handler runs costs at the least;
//   - "shaped" is the minimum with its writes in the order a middleware
//     must send them, the order alone and the entry with the COMMIT
//     (createOrderMiddlewareShaped): shaped/minimum is what that order
//     costs;
//   - tx/shaped is then the middleware's own work.
//
// The other sub-benchmarks, each contender alone (interleaved is left out:
// its b.N counts rounds of 6000 requests):
//
//	go test -run '^$' -bench 'BenchmarkPOST/(insert|bare|claim-mode|transactional)' -benchtime 2000x -benchmem ./idempotency/
func BenchmarkPOST(b *testing.B) {
	pool, store := benchDatabase(b)
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
		// Claim mode writes each entry twice (the claim, then its
		// completion), and the dead row versions it leaves would slow the
		// lookups and inserts of transactional mode in a shared table,
		// which the control does not meet in its own: it keeps its
		// entries in a database of its own.
		claimPool, claimStore := benchDatabase(b)
		claimMode, err := idempotency.NewMiddleware(claimStore, idempotency.Config{Logger: quiet})
		require.NoError(b, err)
		benchInterleaved(b, []contender{
			{name: "bare", handler: withTenant(createOrder(pool)), key: func() string { return "" }},
			{name: "claim", handler: withTenant(claimMode.Handler(createOrder(claimPool))), key: uniqueKey},
			{name: "tx", handler: withTenant(txMode.Handler(createOrderInTx())), key: uniqueKey},
			{name: "bare+row", handler: withTenant(createOrderAndRow(pool, uniqueKey)), key: func() string { return "" }},
			{name: "minimum", handler: withTenant(createOrderAfterLookup(pool, uniqueKey)), key: func() string { return "" }},
			{name: "shaped", handler: withTenant(createOrderMiddlewareShaped(pool, uniqueKey)), key: func() string { return "" }},
		})
	})
	b.Run("claim-mode-replay", func(b *testing.B) {
		benchServer(b, withTenant(claimMode.Handler(createOrder(pool))), func() string { return "replayed" }, http.StatusCreated)
	})
	b.Run("transactional-replay", func(b *testing.B) {
		benchServer(b, withTenant(txMode.Handler(createOrderInTx())), func() string { return "replayed-tx" }, http.StatusCreated)
	})
}

// benchDatabase returns a pool of 2×benchClients app-role connections to
// a new database with the benchmarks' tables, and a store with the
// defaults on it.
func benchDatabase(b *testing.B) (*pgxpool.Pool, *idempotency.Store) {
	db := pgtest.New(b)
	createOrders(b, db)
	createEntryShapedTable(b, db)
	return benchStore(b, db)
}

// benchStore returns a pool of 2×benchClients app-role connections to db
// and a store with the defaults on it.
func benchStore(b *testing.B, db *pgtest.DB) (*pgxpool.Pool, *idempotency.Store) {
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(b, err)
	cfg.MaxConns = 2 * benchClients
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	store, err := idempotency.NewStore(pool, idempotency.StoreConfig{})
	require.NoError(b, err)
	return pool, store
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
		pool, store := benchStore(b, db)
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tenant, _ := tenancy.TenantFrom(r.Context())
		var id int64
		err := tenancy.InTx(r.Context(), pool, func(tx pgx.Tx) error {
			var err error
			id, err = writeOrderAndEntry(r.Context(), tx, []any{tenant, string(body)}, entryArgs(tenant, key()))
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCreated(w, id)
	})
}

// createOrderAfterLookup is the "minimum" contender: the control
// (createOrderAndRow) plus the least a handler keeping its own keys must
// do before it writes: look the key up, under an advisory lock that keeps
// a concurrent request with the same key out, in the round trip that
// begins the transaction (beginWithLookup). Its writes and its COMMIT then
// go as the control's do.
func createOrderAfterLookup(pool *pgxpool.Pool, key func() string) http.Handler {
	return handWritten(pool, key, writeBatchedThenCommit)
}

// createOrderMiddlewareShaped is the "shaped" contender: the minimum with
// its writes sent as a middleware has to send them. A middleware learns
// the response, and so the entry, only after the handler's writes: the
// order goes alone and the entry travels with the COMMIT, as transactional
// mode sends them, in as many round trips. What sets it apart from
// transactional mode is the middleware's own work: reading and
// fingerprinting the request, capturing and encoding the response, the
// handler's managed transaction.
func createOrderMiddlewareShaped(pool *pgxpool.Pool, key func() string) http.Handler {
	return handWritten(pool, key, writeOrderThenEntryWithCommit)
}

// orderSQL is the order every contender writes.
const orderSQL = "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, $2) RETURNING id"

// benchRowSQL writes the control's entry-shaped row.
const benchRowSQL = `INSERT INTO platform.bench_rows
    (tenant_id, key, fingerprint, state, response_status, response_headers, response_body,
     body_omitted, created_at, completed_at, expires_at)
    VALUES ($1, $2, $3, 'completed', 201, $4, $5, false, $6, $6, $7)`

// benchFingerprint is the fingerprint of every entry-shaped row.
var benchFingerprint = make([]byte, 32)

// entryArgs returns benchRowSQL's arguments for key of tenant: a stored
// 201 response with two headers, expiring in 24 hours.
func entryArgs(tenant, key string) []any {
	now := time.Now()
	return []any{tenant, key, benchFingerprint, []byte(`{"Location":["/orders/1"],"Content-Type":["application/json"]}`),
		[]byte(`{"id":1}`), now, now.Add(24 * time.Hour)}
}

// writeOrderAndEntry writes the order (orderSQL with order) and the entry
// (benchRowSQL with entry) in tx in one round trip, and returns the order's
// id.
func writeOrderAndEntry(ctx context.Context, tx pgx.Tx, order, entry []any) (int64, error) {
	var id int64
	var writes pgx.Batch
	writes.Queue(orderSQL, order...).QueryRow(func(row pgx.Row) error { return row.Scan(&id) })
	writes.Queue(benchRowSQL, entry...)
	return id, tx.SendBatch(ctx, &writes).Close()
}

// finishFunc writes the order (orderSQL with order) and the entry
// (benchRowSQL with entry) in tx, which beginWithLookup opened on conn,
// and commits; it returns the order's id.
type finishFunc func(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx, order, entry []any) (int64, error)

// handWritten is the handler of a contender that keeps its own keys in
// platform.bench_rows: the lookup, then finish.
func handWritten(pool *pgxpool.Pool, key func() string, finish finishFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		body, _ := io.ReadAll(r.Body)
		tenant, _ := tenancy.TenantFrom(ctx)
		k := key()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer conn.Release()
		tx, err := beginWithLookup(ctx, conn, tenant, k)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		id, err := finish(ctx, conn, tx, []any{tenant, string(body)}, entryArgs(tenant, k))
		if err != nil {
			// Only after a failure: a COMMIT sent in a batch ends the
			// transaction without pgx knowing, and a Rollback then would
			// cost a round trip.
			_ = tx.Rollback(ctx)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCreated(w, id)
	})
}

// errKeySeen is beginWithLookup's answer for a key already stored or
// locked; the benchmark's keys are all new.
var errKeySeen = errors.New("key already seen")

// beginWithLookup begins a transaction on conn scoped to tenant, takes the
// advisory lock on key and looks key up in platform.bench_rows, in one
// round trip, as transactional mode begins.
func beginWithLookup(ctx context.Context, conn *pgxpool.Conn, tenant, key string) (pgx.Tx, error) {
	var (
		begin  pgx.Batch
		locked bool
		found  bool
	)
	begin.BeginTx(pgx.TxOptions{})
	begin.Queue(`SELECT set_config('`+rls.Setting+`', $1, true), pg_try_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))`,
		tenant, key).QueryRow(func(row pgx.Row) error { return row.Scan(nil, &locked) })
	begin.Queue(`SELECT fingerprint, state, lease_until, response_status, response_headers, response_body,
	    body_omitted, created_at, expires_at FROM platform.bench_rows WHERE tenant_id = $1 AND key = $2`,
		tenant, key).Query(func(rows pgx.Rows) error {
		found = rows.Next()
		rows.Close()
		return rows.Err()
	})
	results := conn.SendBatch(ctx, &begin)
	tx := results.Tx()
	err := results.Close()
	if err == nil && (!locked || found) {
		err = errKeySeen
	}
	if err != nil {
		_ = tx.Rollback(ctx)
		return nil, err
	}
	return tx, nil
}

// writeBatchedThenCommit is the minimum's finishFunc: both writes in one
// round trip, then COMMIT, as the control.
func writeBatchedThenCommit(ctx context.Context, _ *pgxpool.Conn, tx pgx.Tx, order, entry []any) (int64, error) {
	id, err := writeOrderAndEntry(ctx, tx, order, entry)
	if err != nil {
		return 0, err
	}
	return id, tx.Commit(ctx)
}

// writeOrderThenEntryWithCommit is the shaped contender's finishFunc: the
// order in one round trip, the entry and COMMIT in the next.
func writeOrderThenEntryWithCommit(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx, order, entry []any) (int64, error) {
	var id int64
	if err := tx.QueryRow(ctx, orderSQL, order...).Scan(&id); err != nil {
		return 0, err
	}
	var commit pgx.Batch
	commit.Queue(benchRowSQL, entry...)
	commit.Queue("COMMIT")
	return id, conn.SendBatch(ctx, &commit).Close()
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
// sends interleavedRound POSTs to every contender in turn, in an order
// shuffled anew every round, so the machine's drift during the run
// (caches warming, tables growing) touches all alike. It reports each
// contender's requests per second and p99, and their throughput relative
// to the first (the baseline); and the CPU time each request cost, this
// process's (server and clients) and the local database server's
// (cpuUsed), a steadier figure on a noisy machine than requests per
// second: "tx/bare+row-by-cpu" is the control's CPU per request over
// transactional mode's, the throughput ratio a machine saturated by these
// two alone would show (and likewise for the parts of that ratio).
func benchInterleaved(b *testing.B, cs []contender) {
	for i := range cs {
		cs[i].post = newPoster(b, cs[i].handler, cs[i].key, http.StatusCreated)
	}
	// One untimed round each, from as many clients as the timed ones: it
	// opens the pool's connections and prepares every contender's
	// statements on each of them. A single request warms one connection
	// only, and the first timed round of each contender then paid a
	// Parse round trip per statement per connection (and the first of all
	// the connections themselves): 1,022 requests/s against 2,400 after
	// it, for the contender with the most statements.
	for i := range cs {
		sendConcurrently(b, cs[i].post, interleavedRound)
	}
	// A new order every round, drawn from a fixed seed so that a rerun
	// repeats it: with a fixed rotation each contender would always follow
	// the same other one and inherit its after-effects on the server.
	order := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for range b.N {
		for _, j := range order.Perm(len(cs)) {
			c := &cs[j]
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
	// The goal's figure, transactional mode against its control, and its
	// three parts: the lookup (minimum against the control), the order of
	// the writes (shaped against minimum) and the middleware's own work
	// (transactional mode against shaped).
	for _, pair := range [][2]string{{"tx", "bare+row"}, {"minimum", "bare+row"}, {"shaped", "minimum"}, {"tx", "shaped"}} {
		ours, theirs := pair[0], pair[1]
		if rates[ours] > 0 && rates[theirs] > 0 {
			b.ReportMetric(rates[ours]/rates[theirs], ours+"/"+theirs)
		}
		if cpu[ours] > 0 && cpu[theirs] > 0 {
			b.ReportMetric(cpu[theirs]/cpu[ours], ours+"/"+theirs+"-by-cpu")
		}
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
