package server_test

import (
	"context"
	"net/http"
	"runtime"
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
// connection (httpx.AcquireTimeout) — all of them while the hold is still
// in place — and once the hold is released and the load is over, the
// goroutine count is back where it was.
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
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("no answer while the pool was exhausted: %v", a.err)
		case a.status == http.StatusServiceUnavailable && a.retryAfter == "1" && a.ctype == "application/problem+json":
			unavailable++
		default:
			t.Errorf("while the pool was exhausted: %d, Retry-After %q, %s", a.status, a.retryAfter, a.ctype)
		}
	}

	// Served again, and no goroutine left behind.
	if a := get(); a.status != http.StatusOK {
		t.Fatalf("after the hold: %d %v", a.status, a.err)
	}
	client.CloseIdleConnections()
	const slack = 10
	var after int
	faultsEventually(t, 30*time.Second, "the goroutines to settle", func() bool {
		after = settledGoroutines()
		return after <= before+slack
	})
	t.Logf("pool %d; burst of %d while held: %d answered 503 with Retry-After in %s (acquire timeout %s); goroutines before %d, peak %d, after %d",
		poolSize, burst, unavailable, elapsed.Round(time.Millisecond), httpx.AcquireTimeout, before, peak, after)
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
