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
)

// benchClients is the number of concurrent clients of the benchmarks.
const benchClients = 16

// BenchmarkPOST measures a POST that inserts one row, from 16 concurrent
// clients through a real HTTP server, with and without the middleware, and
// the replay path. Each reports requests per second and the p99 latency.
// The baseline ("bare") is the handler as an application writes it without
// the middleware: its own tenancy.InTx transaction, three round trips.
//
//	go test -run '^$' -bench BenchmarkPOST -benchtime 2000x ./idempotency/
func BenchmarkPOST(b *testing.B) {
	db := pgtest.New(b)
	createOrders(b, db)
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
	b.Run("claim-mode-replay", func(b *testing.B) {
		benchServer(b, withTenant(claimMode.Handler(createOrder(pool))), func() string { return "replayed" }, http.StatusCreated)
	})
	b.Run("transactional-replay", func(b *testing.B) {
		benchServer(b, withTenant(txMode.Handler(createOrderInTx())), func() string { return "replayed-tx" }, http.StatusCreated)
	})
}

// benchServer serves h and sends b.N POSTs from benchClients clients, each
// with the key from key ("" for none).
func benchServer(b *testing.B, h http.Handler, key func() string, want int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * benchClients}}
	defer client.CloseIdleConnections()
	post := func() error {
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
	require.NoError(b, post()) // warm up; stores the key a replay benchmark replays
	runClients(b, post)
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
	slices.Sort(latencies)
	p99 := latencies[(len(latencies)*99)/100]
	b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
}
