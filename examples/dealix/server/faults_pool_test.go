package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

// Every connection of the app pool held by a slow statement (requests
// blocked on a table lock): further requests do not queue without end,
// they answer 503 with Retry-After after the bounded wait for a
// connection — reads after httpx.AcquireTimeout, POSTs with an
// Idempotency-Key after the idempotency store's AcquireTimeout — all of
// them while the hold is still in place; each POST retried with its key
// afterwards runs once; and once the hold is released and the load is
// over, the goroutine count is back where it was.
func TestFaultsPoolExhaustedAnswers503InBoundedTime(t *testing.T) {
	const poolSize = 3
	db := pgtest.New(t)
	e := faultsServer(t, db, faultsKey(), func(c *server.Config) { c.AppPoolSize = poolSize })
	token := e.token(newTenant())
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	get := func() faultsAnswer {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/leads?limit=5", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return faultsAnswer{op: "GET list", err: err}
		}
		defer resp.Body.Close()
		return faultsAnswer{op: "GET list", status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), ctype: resp.Header.Get("Content-Type")}
	}
	post := func(i int) faultsAnswer {
		key := fmt.Sprintf("pool-%d", i)
		req, _ := http.NewRequest(http.MethodPost, e.url+"/api/v1/leads", strings.NewReader(fmt.Sprintf(`{"name":"Pool %d"}`, i)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return faultsAnswer{op: "POST lead", key: key, err: err}
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return faultsAnswer{op: "POST lead", key: key, status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), ctype: resp.Header.Get("Content-Type")}
	}
	// Warm up: the pool's connections exist, the client's too.
	for range 2 * poolSize {
		if a := get(); a.status != http.StatusOK {
			t.Fatalf("warm-up: %d %v", a.status, a.err)
		}
	}
	client.CloseIdleConnections()
	before := settledGoroutines()

	// The hold: an exclusive lock on the leads, taken outside the app
	// pool; poolSize requests then block on it, each holding a
	// connection of the app pool.
	ctx := context.Background()
	lockTx, err := db.Owner.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lockTx.Rollback(ctx)
	if _, err := lockTx.Exec(ctx, "LOCK TABLE dealix.leads IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	holders := make(chan faultsAnswer, poolSize)
	for range poolSize {
		go func() { holders <- get() }()
	}
	faultsEventually(t, 30*time.Second, "the app pool's connections to wait on the lock", func() bool {
		return faultsCount(t, db, faultsLockWaiters) >= poolSize
	})

	// The burst, while every connection is held.
	burst := faultsScale(40, 5)
	answers := make([]faultsAnswer, burst)
	var wg sync.WaitGroup
	start := time.Now()
	peak := runtime.NumGoroutine()
	for i := range burst {
		if i%2 == 1 {
			wg.Go(func() { answers[i] = post(i) })
			continue
		}
		wg.Go(func() { answers[i] = get() })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(100 * time.Millisecond):
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	elapsed := time.Since(start)
	// Still held: the lock is released only now, so every answer above
	// came while the pool was exhausted.
	stillWaiting := faultsCount(t, db, faultsLockWaiters)
	if err := lockTx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range poolSize {
		if a := <-holders; a.status != http.StatusOK {
			t.Errorf("a request holding a connection: %d %v", a.status, a.err)
		}
	}
	if stillWaiting < poolSize {
		t.Fatalf("the hold ended early: %d requests waiting on the lock", stillWaiting)
	}
	var unavailable int
	var keys []string
	for _, a := range answers {
		secs, _ := strconv.Atoi(a.retryAfter)
		switch {
		case a.err != nil:
			t.Errorf("%s: no answer while the pool was exhausted: %v", a.op, a.err)
		case a.status == http.StatusServiceUnavailable && secs > 0 && a.ctype == "application/problem+json":
			unavailable++
			if a.key != "" {
				keys = append(keys, a.key)
			}
		default:
			t.Errorf("%s while the pool was exhausted: %d, Retry-After %q, %s", a.op, a.status, a.retryAfter, a.ctype)
		}
	}

	// Served again: each refused POST, retried with its key, runs once.
	if a := get(); a.status != http.StatusOK {
		t.Fatalf("after the hold: %d %v", a.status, a.err)
	}
	if len(keys) != burst/2 {
		t.Fatalf("%d POSTs answered 503, want %d", len(keys), burst/2)
	}
	for _, key := range keys {
		var i int
		_, _ = fmt.Sscanf(key, "pool-%d", &i)
		for range 2 {
			if a := post(i); a.status != http.StatusCreated {
				t.Fatalf("%s retried after the hold: %d %v", key, a.status, a.err)
			}
		}
		if n := faultsCount(t, db, `SELECT count(*) FROM dealix.leads WHERE name = $1`, fmt.Sprintf("Pool %d", i)); n != 1 {
			t.Fatalf("%s: %d leads, want 1", key, n)
		}
	}
	client.CloseIdleConnections()
	const slack = 10
	var after int
	faultsEventually(t, 30*time.Second, "the goroutines to settle", func() bool {
		after = settledGoroutines()
		return after <= before+slack
	})
	t.Logf("pool %d; burst of %d (half POSTs with an Idempotency-Key) while held: %d answered 503 with Retry-After in %s (acquire timeouts %s); %d POSTs retried, each one lead; goroutines before %d, peak %d, after %d",
		poolSize, burst, unavailable, elapsed.Round(time.Millisecond), httpx.AcquireTimeout, len(keys), before, peak, after)
}

// settledGoroutines counts goroutines after giving finished ones a moment
// to exit.
func settledGoroutines() int {
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	return runtime.NumGoroutine()
}

// faultsLockWaiters counts the sessions waiting for a lock on the leads.
const faultsLockWaiters = `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'dealix.leads'::regclass`
