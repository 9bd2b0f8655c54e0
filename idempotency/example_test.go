package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

func ExampleParseKey() {
	for _, header := range []string{`"8e03978e-40d5"`, `8e03978e-40d5`, `"a\"b"`, `""`} {
		key, err := idempotency.ParseKey(header)
		fmt.Printf("%s -> %q %v\n", header, key, err)
	}
	// Output:
	// "8e03978e-40d5" -> "8e03978e-40d5" <nil>
	// 8e03978e-40d5 -> "8e03978e-40d5" <nil>
	// "a\"b" -> "a\"b" <nil>
	// "" -> "" idempotency: invalid idempotency key: length 0 is not within 1–255
}

func ExampleFingerprintRequest() {
	a := idempotency.FingerprintRequest("POST", "/orders?dry_run=1", "application/json", []byte(`{"sku":"x"}`))
	b := idempotency.FingerprintRequest("POST", "/orders?dry_run=0", "application/json", []byte(`{"sku":"x"}`))
	fmt.Println(len(a.String()), a == b)
	// Output: 64 false
}

// exampleTenant is the tenant of the Examples; an authentication
// middleware (package tenancy's) puts the caller's in the context.
const exampleTenant = "11111111-1111-4111-8111-111111111111"

// authenticate stands in for the authentication middleware: it puts the
// tenant in the request's context.
func authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := tenancy.WithTenant(r.Context(), exampleTenant)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// post sends a POST with an Idempotency-Key and prints what came back.
func post(client *http.Client, url, key, body string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(idempotency.HeaderName, key)
	resp, err := client.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %s replayed=%q\n", resp.StatusCode, data, resp.Header.Get(idempotency.ReplayedHeader))
}

// ExampleStore_Claim runs an operation once per key without HTTP: claim
// the key, do the work, store its result; a retry gets the result back.
func ExampleStore_Claim() {
	db := pgtest.ForExample() // a database of the application role
	store, err := idempotency.NewStore(db.App, idempotency.StoreConfig{})
	if err != nil {
		panic(err)
	}
	ctx, err := tenancy.WithTenant(context.Background(), exampleTenant)
	if err != nil {
		panic(err)
	}
	fp := idempotency.FingerprintRequest(http.MethodPost, "/payments", "application/json", []byte(`{"amount":100}`))

	claim, err := store.Claim(ctx, "payment-42", fp)
	if err != nil {
		panic(err)
	}
	fmt.Println("first call holds the key:", claim.Token != "")
	// … make the payment once, then store its result:
	result := idempotency.Response{Status: http.StatusCreated, Body: []byte(`{"payment":"p_1"}`)}
	if err := store.Complete(ctx, "payment-42", claim.Token, result); err != nil {
		panic(err)
	}

	retry, err := store.Claim(ctx, "payment-42", fp)
	if err != nil {
		panic(err)
	}
	fmt.Println("retry gets:", retry.Completed.Status, string(retry.Completed.Body))

	other := idempotency.FingerprintRequest(http.MethodPost, "/payments", "application/json", []byte(`{"amount":999}`))
	_, err = store.Claim(ctx, "payment-42", other)
	fmt.Println("another request with the key:", errors.Is(err, idempotency.ErrFingerprintMismatch))

	_, err = store.Claim(context.Background(), "payment-42", fp)
	fmt.Println("no tenant:", errors.Is(err, idempotency.ErrNoTenant))
	// Output:
	// first call holds the key: true
	// retry gets: 201 {"payment":"p_1"}
	// another request with the key: true
	// no tenant: true
}

// ExampleMiddleware serves a POST behind the middleware; the client's
// retry with the same Idempotency-Key gets the stored response, and the
// handler runs once.
func ExampleMiddleware() {
	db := pgtest.ForExample()
	store, err := idempotency.NewStore(db.App, idempotency.StoreConfig{})
	if err != nil {
		panic(err)
	}
	mw, err := idempotency.NewMiddleware(store, idempotency.Config{})
	if err != nil {
		panic(err)
	}
	var runs atomic.Int32
	createOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order":%d}`, n)
	})
	srv := httptest.NewServer(authenticate(mw.Handler(createOrder)))
	defer srv.Close()

	post(srv.Client(), srv.URL+"/orders", "8e03978e-40d5", `{"sku":"x"}`)
	post(srv.Client(), srv.URL+"/orders", "8e03978e-40d5", `{"sku":"x"}`) // the retry
	post(srv.Client(), srv.URL+"/orders", "5d1c0ab2-77e1", `{"sku":"x"}`) // a new key
	fmt.Println("handler runs:", runs.Load())
	// Output:
	// 201 {"order":1} replayed=""
	// 201 {"order":1} replayed="true"
	// 201 {"order":2} replayed=""
	// handler runs: 2
}

// ExampleTxFrom shows a handler for the transactional mode: its write
// commits together with the idempotency key, or not at all.
func ExampleTxFrom() {
	db := pgtest.ForExample()
	// The application's table, under the same row-level security as the
	// library's.
	ctx := context.Background()
	if _, err := db.Owner.Exec(ctx, `CREATE TABLE platform.example_orders (tenant_id uuid NOT NULL, sku text NOT NULL)`); err != nil {
		panic(err)
	}
	if err := rlspolicy.Apply(ctx, db.Owner, "platform.example_orders"); err != nil {
		panic(err)
	}
	if _, err := db.Owner.Exec(ctx, `GRANT SELECT, INSERT ON platform.example_orders TO `+pgtest.AppRole+", "+pgtest.SystemRole); err != nil {
		panic(err)
	}

	store, err := idempotency.NewStore(db.App, idempotency.StoreConfig{})
	if err != nil {
		panic(err)
	}
	mw, err := idempotency.NewMiddleware(store, idempotency.Config{Transactional: true})
	if err != nil {
		panic(err)
	}
	createOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, ok := idempotency.TxFrom(r.Context()) // scoped to the request's tenant
		if !ok {
			http.Error(w, "not behind a transactional idempotency middleware", http.StatusInternalServerError)
			return
		}
		tenant, _ := tenancy.TenantFrom(r.Context())
		if _, err := tx.Exec(r.Context(), "INSERT INTO platform.example_orders (tenant_id, sku) VALUES ($1, $2)", tenant, "x"); err != nil {
			http.Error(w, "could not create the order", http.StatusInternalServerError) // 5xx: rolled back
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sku":"x"}`)
	})
	srv := httptest.NewServer(authenticate(mw.Handler(createOrder)))
	defer srv.Close()

	post(srv.Client(), srv.URL+"/orders", "c0ffee", `{"sku":"x"}`)
	post(srv.Client(), srv.URL+"/orders", "c0ffee", `{"sku":"x"}`)
	var orders int
	if err := db.System.QueryRow(ctx, "SELECT count(*) FROM platform.example_orders").Scan(&orders); err != nil {
		panic(err)
	}
	fmt.Println("orders:", orders)
	// Output:
	// 201 {"sku":"x"} replayed=""
	// 201 {"sku":"x"} replayed="true"
	// orders: 1
}
