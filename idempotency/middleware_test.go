package idempotency_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/problem"
)

func requireProblem(t testing.TB, res result, status int) map[string]any {
	t.Helper()
	require.Equal(t, status, res.status, res.body)
	require.Equal(t, problem.ContentType, res.header.Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.body), &doc))
	require.EqualValues(t, status, doc["status"])
	return doc
}

func TestFirstRequestRunsAndRetryReplays(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	c := srv.Client()

	first := do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "order-1", `{"sku":"x"}`)
	require.Equal(t, http.StatusCreated, first.status)
	require.Empty(t, first.header.Get(idempotency.ReplayedHeader))
	require.Equal(t, "session=per-response", first.header.Get("Set-Cookie"), "the first response is passed on whole")

	for range 3 {
		again := do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "order-1", `{"sku":"x"}`)
		require.Equal(t, first.status, again.status)
		require.Equal(t, first.body, again.body)
		require.Equal(t, first.header.Get("Location"), again.header.Get("Location"))
		require.Equal(t, first.header.Get("Content-Type"), again.header.Get("Content-Type"))
		require.Equal(t, "true", again.header.Get(idempotency.ReplayedHeader))
		require.Empty(t, again.header.Get("Set-Cookie"), "per-response headers are not stored")
	}
	require.Equal(t, 1, countOrders(t, b.db.System))
}

func TestQuotedAndBareKeyAreTheSameKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	first := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, `abc-123`, `{}`)
	require.Equal(t, http.StatusCreated, first.status)
	again := do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, `"abc-123"`, `{}`)
	require.Equal(t, "true", again.header.Get(idempotency.ReplayedHeader))
	require.Equal(t, 1, countOrders(t, b.db.System))
}

// TestHundredConcurrentRequestsWithOneKey holds the first request's handler
// until the 99 others have been answered: they must all be 409s. Then every
// retry is a byte-equal replay, and the order exists once.
func TestHundredConcurrentRequestsWithOneKey(t *testing.T) {
	t.Parallel()
	for _, transactional := range []bool{false, true} {
		t.Run(map[bool]string{false: "claim", true: "transactional"}[transactional], func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			hold := make(chan struct{})
			var runs atomic.Int32
			inner := createOrder(b.db.App)
			if transactional {
				inner = createOrderInTx()
			}
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				runs.Add(1)
				<-hold
				inner.ServeHTTP(w, r)
			})
			srv := b.server(t, idempotency.Config{Transactional: transactional}, handler)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
			t.Cleanup(client.CloseIdleConnections)

			const n = 100
			results := make(chan result, n)
			for range n {
				go func() {
					results <- do(t, client, http.MethodPost, srv.URL+"/orders", tenantA, "one-key", `{"sku":"x"}`)
				}()
			}
			for range n - 1 {
				res := <-results
				requireProblem(t, res, http.StatusConflict)
				require.Equal(t, "1", res.header.Get("Retry-After"))
			}
			close(hold)
			first := <-results
			require.Equal(t, http.StatusCreated, first.status)
			require.Empty(t, first.header.Get(idempotency.ReplayedHeader))
			require.EqualValues(t, 1, runs.Load())
			require.Equal(t, 1, countOrders(t, b.db.System))

			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					again := do(t, client, http.MethodPost, srv.URL+"/orders", tenantA, "one-key", `{"sku":"x"}`)
					if again.status != first.status || again.body != first.body || again.header.Get(idempotency.ReplayedHeader) != "true" {
						t.Errorf("retry is not a byte-equal replay: %d %q %v", again.status, again.body, again.header)
					}
				})
			}
			wg.Wait()
			require.EqualValues(t, 1, runs.Load())
			require.Equal(t, 1, countOrders(t, b.db.System))
		})
	}
}

func TestKeyReusedForAnotherRequestIs422(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	c := srv.Client()
	require.Equal(t, http.StatusCreated, do(t, c, http.MethodPost, srv.URL+"/orders?x=1", tenantA, "k", `{"a":1}`).status)

	requireProblem(t, do(t, c, http.MethodPost, srv.URL+"/orders?x=1", tenantA, "k", `{"a":2}`), http.StatusUnprocessableEntity)
	requireProblem(t, do(t, c, http.MethodPost, srv.URL+"/orders?x=2", tenantA, "k", `{"a":1}`), http.StatusUnprocessableEntity)
	requireProblem(t, do(t, c, http.MethodPut, srv.URL+"/orders?x=1", tenantA, "k", `{"a":1}`), http.StatusUnprocessableEntity)
	require.Equal(t, 1, countOrders(t, b.db.System))
}

func TestTwoTenantsUseOneKeyIndependently(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	c := srv.Client()
	a := do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "same", `{"t":"a"}`)
	bb := do(t, c, http.MethodPost, srv.URL+"/orders", tenantB, "same", `{"t":"b"}`)
	require.Equal(t, http.StatusCreated, a.status)
	require.Equal(t, http.StatusCreated, bb.status, "tenant B's different body is no mismatch")
	require.Empty(t, bb.header.Get(idempotency.ReplayedHeader))
	require.NotEqual(t, a.body, bb.body)
	require.Equal(t, a.body, do(t, c, http.MethodPost, srv.URL+"/orders", tenantA, "same", `{"t":"a"}`).body)
	require.Equal(t, bb.body, do(t, c, http.MethodPost, srv.URL+"/orders", tenantB, "same", `{"t":"b"}`).body)
	require.Equal(t, 2, countOrders(t, b.db.System))
}

func TestMalformedKeysAre400(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	srv := b.server(t, idempotency.Config{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) }))
	for name, key := range map[string]string{
		"empty quoted":     `""`,
		"256 characters":   strings.Repeat("k", 256),
		"quoted 256":       `"` + strings.Repeat("k", 256) + `"`,
		"tab in quote":     "\"a\tb\"",
		"tab inside token": "a\tb",
		"non-ASCII":        "caf\u00e9",
		"unterminated":     `"abc`,
		"bad escape":       `"a\nb"`,
		"list":             `"a", "b"`,
	} {
		req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		require.NoError(t, err)
		req.Header.Set(tenantHeader, tenantA)
		req.Header[idempotency.HeaderName] = []string{key}
		res := send(t, srv.Client(), req)
		require.Equal(t, http.StatusBadRequest, res.status, name)
		requireProblem(t, res, http.StatusBadRequest)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set(tenantHeader, tenantA)
	req.Header[idempotency.HeaderName] = []string{"a", "b"}
	requireProblem(t, send(t, srv.Client(), req), http.StatusBadRequest)

	emptyHeader, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	emptyHeader.Header.Set(tenantHeader, tenantA)
	emptyHeader.Header[idempotency.HeaderName] = []string{""}
	requireProblem(t, send(t, srv.Client(), emptyHeader), http.StatusBadRequest)

	require.Zero(t, runs.Load())
	require.Equal(t, 0, countKeys(t, b.db))
}

func send(t testing.TB, c *http.Client, req *http.Request) result {
	t.Helper()
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return result{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

func TestMissingKeyPassesThroughUnlessRequired(t *testing.T) {
	t.Parallel()
	b := setup(t)
	optional := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	required := b.server(t, idempotency.Config{RequireKey: true}, createOrder(b.db.App))

	require.Equal(t, http.StatusCreated, do(t, optional.Client(), http.MethodPost, optional.URL, tenantA, "", "{}").status)
	require.Equal(t, http.StatusCreated, do(t, optional.Client(), http.MethodPost, optional.URL, tenantA, "", "{}").status)
	requireProblem(t, do(t, required.Client(), http.MethodPost, required.URL, tenantA, "", "{}"), http.StatusBadRequest)
	// Methods not configured pass through even when the key is required.
	require.Equal(t, http.StatusCreated, do(t, required.Client(), http.MethodDelete, required.URL, tenantA, "", "{}").status)
	require.Equal(t, 3, countOrders(t, b.db.System))
	require.Equal(t, 0, countKeys(t, b.db))
}

func TestRequestWithoutTenantIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) })
	srv := b.server(t, idempotency.Config{}, h)
	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL, "", "k", "{}"), http.StatusForbidden)

	custom := b.server(t, idempotency.Config{NoTenant: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		problem.Status(w, http.StatusUnauthorized, "authenticate first")
	})}, h)
	res := do(t, custom.Client(), http.MethodPost, custom.URL, "", "k", "{}")
	requireProblem(t, res, http.StatusUnauthorized)
	require.Equal(t, `Bearer realm="api"`, res.header.Get("WWW-Authenticate"))
	require.Zero(t, runs.Load())
}

func TestBodyIsLimitedAndHandedOnIntact(t *testing.T) {
	t.Parallel()
	b := setup(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		assert.NoError(t, err)
		w.Header().Set("X-Length", itoa(r.ContentLength))
		_, _ = w.Write(body)
	})
	srv := b.server(t, idempotency.Config{MaxBodyBytes: 64}, echo)
	body := strings.Repeat("b", 64)
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", body)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, body, res.body)
	require.Equal(t, "64", res.header.Get("X-Length"))

	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k2", body+"!"), http.StatusRequestEntityTooLarge)
	_, err := b.store.Lookup(tenantCtx(t, tenantA), "k2")
	require.ErrorIs(t, err, idempotency.ErrNotFound)
}

// recoverer stands for the server's recovery middleware outside ours: it
// records what reached it and answers 500.
func recoverer(got chan<- any, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				got <- v
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func TestPanicReleasesTheClaimAndPropagates(t *testing.T) {
	t.Parallel()
	for _, transactional := range []bool{false, true} {
		t.Run(map[bool]string{false: "claim", true: "transactional"}[transactional], func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var runs atomic.Int32
			inner := createOrder(b.db.App)
			if transactional {
				inner = createOrderInTx()
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if runs.Add(1) == 1 {
					if tx, ok := idempotency.TxFrom(r.Context()); ok { // a write that must be undone
						_, err := tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'lost')", tenantA)
						assert.NoError(t, err)
					}
					panic("boom")
				}
				inner.ServeHTTP(w, r)
			})
			mw, err := idempotency.NewMiddleware(b.store, idempotency.Config{Transactional: transactional})
			require.NoError(t, err)
			panics := make(chan any, 1)
			srv := httptest.NewServer(withTenant(recoverer(panics, mw.Handler(h))))
			t.Cleanup(srv.Close)

			res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
			require.Equal(t, http.StatusInternalServerError, res.status)
			require.Equal(t, "boom", <-panics, "the panic reaches the server's recovery unchanged")
			require.Equal(t, 0, countKeys(t, b.db))

			res = do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
			require.Equal(t, http.StatusCreated, res.status, "the retry runs the handler again")
			require.EqualValues(t, 2, runs.Load())
			require.Equal(t, 1, countOrders(t, b.db.System))
		})
	}
}

func TestClientGoneBeforeResponseReleasesTheClaim(t *testing.T) {
	t.Parallel()
	for _, transactional := range []bool{false, true} {
		t.Run(map[bool]string{false: "claim", true: "transactional"}[transactional], func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			started, done := make(chan struct{}), make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tx, ok := idempotency.TxFrom(r.Context()); ok {
					_, err := tx.Exec(r.Context(), "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'x')", tenantA)
					assert.NoError(t, err)
				}
				close(started)
				<-r.Context().Done() // gives up when the client goes away
			})
			mw, err := idempotency.NewMiddleware(b.store, idempotency.Config{Transactional: transactional})
			require.NoError(t, err)
			srv := httptest.NewServer(withTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(done)
				mw.Handler(h).ServeHTTP(w, r)
			})))
			t.Cleanup(srv.Close)

			ctx, cancel := context.WithCancel(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
			require.NoError(t, err)
			req.Header.Set(tenantHeader, tenantA)
			req.Header.Set(idempotency.HeaderName, "k")
			go func() { <-started; cancel() }()
			_, err = srv.Client().Do(req)
			require.ErrorIs(t, err, context.Canceled)
			<-done
			_, err = b.store.Lookup(tenantCtx(t, tenantA), "k")
			require.ErrorIs(t, err, idempotency.ErrNotFound, "the key is not stuck in progress")
			require.Equal(t, 0, countOrders(t, b.db.System), "an abandoned transaction commits nothing")
		})
	}
}

func TestServerErrorsAreReleasedByDefault(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			http.Error(w, "upstream down", http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	srv := b.server(t, idempotency.Config{}, h)
	require.Equal(t, http.StatusBadGateway, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").status)
	replay := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusCreated, replay.status)
	require.Equal(t, "true", replay.header.Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 2, runs.Load())
}

func TestServerErrorsStoredWhenConfigured(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		http.Error(w, "card processor failed", http.StatusInternalServerError)
	})
	srv := b.server(t, idempotency.Config{StoreServerErrors: true}, h)
	first := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	again := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusInternalServerError, again.status)
	require.Equal(t, first.body, again.body)
	require.Equal(t, "true", again.header.Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 1, runs.Load())
}

func TestLargeResponseIsSentButNotStored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	big := strings.Repeat("x", 100)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, big)
	})
	srv := b.server(t, idempotency.Config{MaxResponseBytes: 99}, h)
	first := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusCreated, first.status)
	require.Equal(t, big, first.body)

	doc := requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}"), http.StatusConflict)
	require.EqualValues(t, http.StatusCreated, doc["original_status"])
	require.EqualValues(t, 1, runs.Load(), "the operation never runs twice")
	entry, err := b.store.Lookup(tenantCtx(t, tenantA), "k")
	require.NoError(t, err)
	require.True(t, entry.Response.BodyOmitted)
}

// TestDeadHoldersClaimIsTakenOverAfterItsLease: a claim whose holder died
// answers 409 until its lease runs out, then the retry runs the handler.
func TestDeadHoldersClaimIsTakenOverAfterItsLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	body := `{"sku":"x"}`
	fp := idempotency.FingerprintRequest(http.MethodPost, "/orders", "application/json", []byte(body))
	_, err := b.store.Claim(tenantCtx(t, tenantA), "k", fp) // the holder that dies
	require.NoError(t, err)

	requireProblem(t, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body), http.StatusConflict)
	b.age(t, tenantA, "k", time.Minute)
	require.Equal(t, http.StatusCreated, do(t, srv.Client(), http.MethodPost, srv.URL+"/orders", tenantA, "k", body).status)
	require.Equal(t, 1, countOrders(t, b.db.System))
}

func TestStoreFailureIs503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := b.server(t, idempotency.Config{}, createOrder(b.db.App))
	b.db.App.Close()
	res := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	requireProblem(t, res, http.StatusServiceUnavailable)
	require.NotEmpty(t, res.header.Get("Retry-After"), "a 503 says when to try again")
	require.Equal(t, 0, countOrders(t, b.db.System))
}

func TestUnconfiguredMethodsPassThrough(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	srv := b.server(t, idempotency.Config{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) }))
	for range 2 {
		require.Equal(t, http.StatusOK, do(t, srv.Client(), http.MethodGet, srv.URL, tenantA, "k", "").status)
	}
	require.EqualValues(t, 2, runs.Load())
	require.Equal(t, 0, countKeys(t, b.db))
}

func TestMethodsAndStoredHeadersAreConfigurable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("X-Order", "o-1")
		w.Header().Set("Location", "/orders/1")
		_, _ = io.WriteString(w, "ok")
	})
	srv := b.server(t, idempotency.Config{Methods: []string{http.MethodPut}, StoredHeaders: []string{"x-order"}}, h)
	for range 2 {
		require.Empty(t, do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}").header.Get(idempotency.ReplayedHeader))
	}
	require.EqualValues(t, 2, runs.Load(), "POST is not configured: it passes through")

	require.Equal(t, http.StatusOK, do(t, srv.Client(), http.MethodPut, srv.URL, tenantA, "k", "{}").status)
	replay := do(t, srv.Client(), http.MethodPut, srv.URL, tenantA, "k", "{}")
	require.Equal(t, "true", replay.header.Get(idempotency.ReplayedHeader))
	require.Equal(t, "o-1", replay.header.Get("X-Order"))
	require.Empty(t, replay.header.Get("Location"), "only the configured headers are stored")
	require.Equal(t, "ok", replay.body)
	require.EqualValues(t, 3, runs.Load())
}

// A handler that finishes its work although the client went away has its
// response stored (the side effect happened): the store call does not use
// the cancelled request context, and the client's retry gets the replay.
func TestClientGoneAfterTheWorkStoresTheResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	started, done := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			close(started)
			<-r.Context().Done()
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "created")
	})
	mw, err := idempotency.NewMiddleware(b.store, idempotency.Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(withTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if r.Header.Get("X-First") != "" {
				close(done)
			}
		}()
		mw.Handler(h).ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set(tenantHeader, tenantA)
	req.Header.Set(idempotency.HeaderName, "k")
	req.Header.Set("X-First", "1")
	req.Header.Set("Content-Type", "application/json") // as do sends it: the same fingerprint
	go func() { <-started; cancel() }()
	_, err = srv.Client().Do(req)
	require.ErrorIs(t, err, context.Canceled)
	<-done

	retry := do(t, srv.Client(), http.MethodPost, srv.URL, tenantA, "k", "{}")
	require.Equal(t, http.StatusCreated, retry.status)
	require.Equal(t, "created", retry.body)
	require.Equal(t, "true", retry.header.Get(idempotency.ReplayedHeader))
	require.EqualValues(t, 1, runs.Load())
}
