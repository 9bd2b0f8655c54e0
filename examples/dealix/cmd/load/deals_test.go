package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestDealCloseWhenServed drives a stand-in server that has the deals
// routes (the reference server's part 1 does not): every close follows a
// deal created on one of the tenant's leads, each request with its own
// Idempotency-Key.
func TestDealCloseWhenServed(t *testing.T) {
	var mu sync.Mutex
	leads := map[string]bool{}
	deals := map[string]bool{}
	var closed int
	keys := map[string]bool{}
	fresh := func(w http.ResponseWriter, r *http.Request) bool {
		k := r.Header.Get("Idempotency-Key")
		mu.Lock()
		defer mu.Unlock()
		if k == "" || keys[k] {
			http.Error(w, "want a fresh Idempotency-Key", http.StatusBadRequest)
			return false
		}
		keys[k] = true
		return true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/api-keys", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"key":"dlx_standin"}`)
	})
	mux.HandleFunc("POST /api/v1/leads", func(w http.ResponseWriter, r *http.Request) {
		if !fresh(w, r) {
			return
		}
		id := uuid.NewString()
		mu.Lock()
		leads[id] = true
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"`+id+`"}`)
	})
	mux.HandleFunc("POST /api/v1/deals", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			LeadID string `json:"lead_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.LeadID == "" {
			http.Error(w, "lead_id required", http.StatusUnprocessableEntity)
			return
		}
		if !fresh(w, r) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !leads[in.LeadID] {
			http.Error(w, "no such lead", http.StatusUnprocessableEntity)
			return
		}
		id := uuid.NewString()
		deals[id] = true
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"`+id+`"}`)
	})
	mux.HandleFunc("POST /api/v1/deals/{id}/close", func(w http.ResponseWriter, r *http.Request) {
		if !fresh(w, r) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !deals[r.PathValue("id")] {
			http.NotFound(w, r)
			return
		}
		closed++
		_, _ = io.WriteString(w, `{"status":"won"}`)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()

	rep, err := Run(context.Background(), Options{
		Target: ts.URL, Duration: 5 * time.Minute, MaxRequests: 300, Concurrency: 4,
		Tenants: 2, HMACKey: make([]byte, 32), Mix: Mix{Create: 1, Close: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, rep)
	if rep.Errors != 0 {
		t.Fatalf("%d errors:\n%+v", rep.Errors, rep.Ops)
	}
	dc, cl := rep.Op(OpDealCreate), rep.Op(OpDealClose)
	if dc == nil || cl == nil || cl.Statuses["200"] != cl.Count || dc.Statuses["201"] != dc.Count {
		t.Fatalf("deals: create %+v, close %+v", dc, cl)
	}
	// The budget may end between a deal's create and its close, once per
	// worker.
	if missing := dc.Count - cl.Count; missing < 0 || missing > 4 {
		t.Fatalf("%d deals created, %d closed", dc.Count, cl.Count)
	}
	mu.Lock()
	defer mu.Unlock()
	if closed != cl.Count {
		t.Fatalf("server closed %d deals, report says %d", closed, cl.Count)
	}
	for _, n := range rep.Notes {
		if strings.Contains(n, "deal close skipped") {
			t.Fatalf("deals served, yet %q", n)
		}
	}
}
