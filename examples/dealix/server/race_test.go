package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
)

// Concurrent POSTs with one Idempotency-Key: one lead; every answer is
// that lead's 201 (first or replayed, byte for byte) or a 409 while the
// first is still running.
func TestConcurrentCreatesWithOneKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	h := with(bearer(e.token(tenant)), "Idempotency-Key", "same-key")
	const n = 8
	answers := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = e.do("POST", "/api/v1/leads", `{"name":"Race"}`, h...) })
	}
	wg.Wait()
	var created []byte
	for _, r := range answers {
		switch r.StatusCode {
		case http.StatusCreated:
			if created == nil {
				created = r.body
			} else if !equalBytes(created, r.body) {
				t.Fatalf("two different 201s:\n%s\n%s", created, r.body)
			}
		case http.StatusConflict:
			wantProblem(t, r, http.StatusConflict)
		default:
			t.Fatalf("status %d: %s", r.StatusCode, r.body)
		}
	}
	var count int
	if err := e.db.System.QueryRow(context.Background(), "SELECT count(*) FROM dealix.leads WHERE tenant_id = $1", tenant).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if created == nil || count != 1 {
		t.Fatalf("%d leads (a 201: %v), want exactly 1", count, created != nil)
	}
}

// Concurrent PATCHes naming the same version: exactly one wins, the
// others get 412, and the lead's version rises by one.
func TestConcurrentUpdatesOfOneVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := e.token(newTenant())
	l := e.createLead(raw, `{"name":"Contested"}`)
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := e.do("PATCH", "/api/v1/leads/"+l.ID, `{"notes":"writer"}`, with(bearer(raw), "If-Match", `"v1"`)...)
			statuses[i] = r.StatusCode
		})
	}
	wg.Wait()
	won := 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			won++
		case http.StatusPreconditionFailed:
		default:
			t.Fatalf("status %d", s)
		}
	}
	var got lead
	e.do("GET", "/api/v1/leads/"+l.ID, "", bearer(raw)...).json(t, &got)
	if won != 1 || got.Version != 2 {
		t.Fatalf("%d writers won, version %d; want 1 and 2", won, got.Version)
	}
}
