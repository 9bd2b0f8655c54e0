package idempotency_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/dealix/platform/idempotency"
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

// ExampleTxFrom shows a handler for the transactional mode: its write
// commits together with the idempotency key, or not at all.
func ExampleTxFrom() {
	createOrder := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tx, ok := idempotency.TxFrom(r.Context())
		if !ok {
			http.Error(w, "not behind a transactional idempotency middleware", http.StatusInternalServerError)
			return
		}
		if _, err := tx.Exec(r.Context(), "INSERT INTO orders (sku) VALUES ($1)", "x"); err != nil {
			http.Error(w, "could not create the order", http.StatusInternalServerError) // 5xx: rolled back
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	rec := httptest.NewRecorder()
	createOrder.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader("{}")))
	fmt.Println(rec.Code)
	// Output: 500
}
