package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/ratelimit"
)

// faultsLong, when set (DEALIX_FAULTS_LONG=1), makes the fault tests run
// longer and with more load, for runs by hand; CI runs the bounded form.
var faultsLong = os.Getenv("DEALIX_FAULTS_LONG") != ""

// faultsScale is n in CI and n*long in a long run.
func faultsScale(n, long int) int {
	if faultsLong {
		return n * long
	}
	return n
}

// faultsServer starts server.New on db with key as its JWT key and serves
// it on a listener of its own. The rate limit is raised so the load
// measures the database, not the limiter.
func faultsServer(t *testing.T, db *pgtest.DB, key []byte, mutate ...func(*server.Config)) *env {
	t.Helper()
	urls := urlsFor(t, db)
	cfg := server.Config{
		DatabaseURL:       urls.owner,
		AppDatabaseURL:    urls.app,
		SystemDatabaseURL: urls.system,
		ListenDatabaseURL: urls.listen,
		JWTHMACKey:        key,
		CORSOrigins:       []string{allowedOrigin},
		RateLimit:         ratelimit.Rate{Requests: 1_000_000, Window: time.Minute},
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &env{t: t, db: db, srv: srv, url: ts.URL, key: key}
}

func faultsKey() []byte {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return key
}

// faultsAnswer is one request of a fault test's load.
type faultsAnswer struct {
	op, key, body string
	status        int
	retryAfter    string
	ctype         string
	id            string // the lead's id on a 2xx create
	detail        string // a problem's detail
	err           error
}

// faultsClient sends the load's requests with a bounded wait each.
var faultsClient = &http.Client{Timeout: 20 * time.Second}

// faultsSend sends one request and reads the answer; it never fails the
// test (the caller counts).
func faultsSend(base, method, path, body, token string, headers ...string) faultsAnswer {
	a := faultsAnswer{op: method + " " + path, body: body}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		a.err = err
		return a
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
		if headers[i] == "Idempotency-Key" {
			a.key = headers[i+1]
		}
	}
	resp, err := faultsClient.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a.status, a.retryAfter, a.ctype = resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type")
	if a.ctype == "application/problem+json" {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(b, &p)
		a.detail = p.Detail
	}
	if method == http.MethodPost && a.status/100 == 2 {
		var l struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(b, &l)
		a.id = l.ID
	}
	return a
}

// faultsCreate posts a new lead with a fresh Idempotency-Key.
func faultsCreate(base, token string) faultsAnswer {
	key := uuid.NewString()
	body := fmt.Sprintf(`{"name":"Load %s","company":"Faults Co"}`, key[:8])
	return faultsSend(base, http.MethodPost, "/api/v1/leads", body, token, "Idempotency-Key", key)
}

// faultsTally counts answers by operation and status, safely from many
// goroutines.
type faultsTally struct {
	mu     sync.Mutex
	all    []faultsAnswer
	byCode map[string]int
}

func (c *faultsTally) add(a faultsAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byCode == nil {
		c.byCode = map[string]int{}
	}
	c.all = append(c.all, a)
	code := strconv.Itoa(a.status)
	if a.err != nil {
		code = "transport error"
	}
	c.byCode[a.op[:strings.IndexByte(a.op, ' ')]+" "+code]++
}

func (c *faultsTally) answers() []faultsAnswer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]faultsAnswer(nil), c.all...)
}

func (c *faultsTally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.byCode)
}

// faultsEventually polls cond until it holds or wait has passed.
func faultsEventually(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", wait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultsCount runs a count(*) as the system role.
func faultsCount(t *testing.T, db *pgtest.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.System.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// faultsSendUntilAccepted sends a keyed request as faultsSend does, and
// again with the same key while the idempotency middleware answers that
// its store is unavailable, as a client honouring Retry-After does, for up
// to wait: a burst on cold pools can keep a request waiting for a
// connection past the store's acquire timeout on a loaded machine.
func faultsSendUntilAccepted(wait time.Duration, base, method, path, body, token string, headers ...string) faultsAnswer {
	deadline := time.Now().Add(wait)
	for {
		a := faultsSend(base, method, path, body, token, headers...)
		if !faultsIdempotencyUnavailable(a) || time.Now().After(deadline) {
			return a
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// faultsIdempotencyUnavailable tells the idempotency middleware's own
// 503s (its store could not claim or commit the key) from the server's.
func faultsIdempotencyUnavailable(a faultsAnswer) bool {
	return a.status == http.StatusServiceUnavailable &&
		(a.detail == "idempotency store unavailable" || strings.Contains(a.detail, "retry it with the same Idempotency-Key") ||
			strings.Contains(a.detail, "it had no effect and may be retried"))
}
