package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/deals"
)

// dealView is a deal as the API shows it.
type dealView struct {
	ID         string  `json:"id"`
	LeadID     *string `json:"lead_id"`
	Title      string  `json:"title"`
	Amount     int64   `json:"amount"`
	Currency   string  `json:"currency"`
	Owner      *string `json:"owner"`
	Status     string  `json:"status"`
	LostReason *string `json:"lost_reason"`
	ClosedBy   *string `json:"closed_by"`
	RunID      *string `json:"run_id"`
	RunStatus  string  `json:"run_status"`
	Evidence   *struct {
		RunID         string `json:"run_id"`
		Outcome       string `json:"outcome"`
		ClosedBy      string `json:"closed_by"`
		Amount        int64  `json:"amount"`
		Currency      string `json:"currency"`
		CorrelationID string `json:"correlation_id"`
		TraceID       string `json:"trace_id"`
	} `json:"evidence"`
}

// The in-process servers install no telemetry; the W3C propagator lets a
// request's traceparent reach the handler, as telemetry.Init makes it do
// in the binary.
var tracePropagation sync.Once

func (e *env) createDeal(token, body string) dealView {
	e.t.Helper()
	r := e.do("POST", "/api/v1/deals", body, with(bearer(token), "Idempotency-Key", uuid.NewString())...)
	wantStatus(e.t, r, http.StatusCreated)
	var d dealView
	r.json(e.t, &d)
	return d
}

// waitRun polls the deal until its run finished and returns it.
func (e *env) waitRun(token, id string) dealView {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var d dealView
		r := e.do("GET", "/api/v1/deals/"+id, "", bearer(token)...)
		wantStatus(e.t, r, http.StatusOK)
		r.json(e.t, &d)
		if d.RunStatus == string(durable.StatusCompleted) {
			return d
		}
		if d.RunStatus == string(durable.StatusFailed) || d.RunStatus == string(durable.StatusCancelled) || time.Now().After(deadline) {
			e.t.Fatalf("the deal's run did not complete: %s", r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.System.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDealCloseCommitsOnceAndItsRunLeavesEvidence(t *testing.T) {
	t.Parallel()
	tracePropagation.Do(func() { otel.SetTextMapPropagator(propagation.TraceContext{}) })
	e := newEnv(t)
	tenant := newTenant()
	token := e.token(tenant)
	l := e.createLead(token, `{"name":"Huda"}`)

	// Creation checks its input.
	for body, status := range map[string]int{
		`{"title":"x","currency":"SAR"}`:                                                   http.StatusBadRequest, // no amount
		`{"title":"x","amount":-1,"currency":"SAR"}`:                                       http.StatusBadRequest,
		`{"title":"x","amount":1.5,"currency":"SAR"}`:                                      http.StatusBadRequest,
		`{"title":"x","amount":100,"currency":"sar"}`:                                      http.StatusBadRequest,
		`{"title":"","amount":100,"currency":"SAR"}`:                                       http.StatusBadRequest,
		`{"title":"x","amount":100,"currency":"SAR","lead_id":1}`:                          http.StatusBadRequest,
		`{"title":"x","amount":100,"currency":"SAR","lead_id":"` + uuid.NewString() + `"}`: http.StatusUnprocessableEntity,
	} {
		wantProblem(t, e.do("POST", "/api/v1/deals", body, with(bearer(token), "Idempotency-Key", uuid.NewString())...), status)
	}
	d := e.createDeal(token, `{"lead_id":"`+l.ID+`","title":"Clinic rollout","amount":125050,"currency":"SAR","owner":"sara"}`)
	if d.Status != "open" || d.RunID != nil || d.Amount != 125050 || d.LeadID == nil || *d.LeadID != l.ID {
		t.Fatalf("created %+v", d)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	h := with(bearer(token), "Idempotency-Key", "close-1", "X-Correlation-ID", "corr-close-1",
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	closePath := "/api/v1/deals/" + d.ID + "/close"
	wantProblem(t, e.do("POST", closePath, `{"outcome":"lost"}`, with(bearer(token), "Idempotency-Key", "no-reason")...), http.StatusBadRequest)
	wantProblem(t, e.do("POST", closePath, `{"outcome":"won"}`, bearer(token)...), http.StatusBadRequest) // no key

	first := e.do("POST", closePath, `{"outcome":"won"}`, h...)
	wantStatus(t, first, http.StatusOK)
	var closed dealView
	first.json(t, &closed)
	if closed.Status != "won" || closed.RunID == nil || *closed.RunID != deals.RunID(d.ID) || closed.ClosedBy == nil {
		t.Fatalf("closed %s", first.body)
	}
	// The same close again: the stored answer, byte for byte.
	retry := e.do("POST", closePath, `{"outcome":"won"}`, h...)
	wantStatus(t, retry, http.StatusOK)
	if !equalBytes(first.body, retry.body) || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay differs (replayed %q):\n%s\n%s", retry.Header.Get("Idempotent-Replayed"), first.body, retry.body)
	}
	// Another key on the closed deal: 409, whatever the outcome asked.
	p := wantProblem(t, e.do("POST", closePath, `{"outcome":"lost","reason":"late"}`, with(bearer(token), "Idempotency-Key", "close-2")...), http.StatusConflict)
	if p["deal_status"] != "won" || !strings.Contains(p["detail"].(string), "won") {
		t.Fatalf("409 problem %v", p)
	}
	wantProblem(t, e.do("POST", closePath, `{"outcome":"won"}`, with(bearer(token), "Idempotency-Key", "close-3")...), http.StatusConflict)

	got := e.waitRun(token, d.ID)
	ev := got.Evidence
	if ev == nil || ev.Outcome != "won" || ev.Amount != 125050 || ev.Currency != "SAR" || ev.RunID != deals.RunID(d.ID) ||
		ev.ClosedBy != "user-"+tenant[:8] || ev.CorrelationID != "corr-close-1" || ev.TraceID != traceID {
		t.Fatalf("evidence %+v", ev)
	}
	if n := e.count(t, `SELECT count(*) FROM dealix.deal_tasks WHERE tenant_id = $1 AND deal_id = $2`, tenant, d.ID); n != 1 {
		t.Fatalf("%d follow-up tasks, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM platform.durable_runs WHERE tenant_id = $1`, tenant); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	// The follow-up jobs: two messages for a won deal, each sent once.
	deadline := time.Now().Add(time.Minute)
	for e.count(t, `SELECT count(*) FROM dealix.deal_followups_sent WHERE tenant_id = $1 AND deal_id = $2`, tenant, d.ID) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the follow-up messages were not sent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := e.count(t, `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND queue = 'followups'`, tenant); n != 2 {
		t.Fatalf("%d follow-up jobs, want 2", n)
	}

	// A lost deal needs its reason and keeps it.
	lost := e.createDeal(token, `{"title":"Pilot","amount":0,"currency":"USD"}`)
	r := e.do("POST", "/api/v1/deals/"+lost.ID+"/close", `{"outcome":"lost","reason":"budget"}`, with(bearer(token), "Idempotency-Key", "lost-1")...)
	wantStatus(t, r, http.StatusOK)
	got = e.waitRun(token, lost.ID)
	if got.Status != "lost" || got.LostReason == nil || *got.LostReason != "budget" || got.Evidence == nil || got.Evidence.Outcome != "lost" {
		t.Fatalf("lost deal %+v", got)
	}

	// Listing pages newest first and filters by status.
	var page struct {
		Items      []dealView `json:"items"`
		NextCursor string     `json:"next_cursor"`
	}
	e.do("GET", "/api/v1/deals?limit=1", "", bearer(token)...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != lost.ID || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	cur := page.NextCursor
	page.NextCursor = ""
	e.do("GET", "/api/v1/deals?limit=1&cursor="+cur, "", bearer(token)...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != d.ID || page.Items[0].Evidence == nil || page.NextCursor != "" {
		t.Fatalf("second page %+v", page)
	}
	e.do("GET", "/api/v1/deals?status=won", "", bearer(token)...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != d.ID {
		t.Fatalf("won deals %+v", page)
	}
	wantProblem(t, e.do("GET", "/api/v1/deals?status=maybe", "", bearer(token)...), http.StatusBadRequest)
	wantProblem(t, e.do("GET", "/api/v1/deals?cursor=nope", "", bearer(token)...), http.StatusBadRequest)
}

func TestDealsAreIsolatedByTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.token(newTenant()), e.token(newTenant())
	mine := e.createDeal(a, `{"title":"Mine","amount":500,"currency":"SAR"}`)

	missing := e.do("GET", "/api/v1/deals/"+uuid.NewString(), "", bearer(b)...)
	wantProblem(t, missing, http.StatusNotFound)
	get := e.do("GET", "/api/v1/deals/"+mine.ID, "", bearer(b)...)
	wantProblem(t, get, http.StatusNotFound)
	if !equalBytes(get.body, missing.body) {
		t.Fatalf("another tenant's deal: %s; a missing deal: %s", get.body, missing.body)
	}
	// B cannot close it: 404, and nothing changed.
	wantProblem(t, e.do("POST", "/api/v1/deals/"+mine.ID+"/close", `{"outcome":"won"}`, with(bearer(b), "Idempotency-Key", "steal")...), http.StatusNotFound)
	var page struct{ Items []dealView }
	e.do("GET", "/api/v1/deals", "", bearer(b)...).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("tenant B lists %d deals", len(page.Items))
	}
	// B's lead cannot be named by A either.
	theirs := e.createLead(b, `{"name":"Theirs"}`)
	wantProblem(t, e.do("POST", "/api/v1/deals", `{"title":"x","amount":1,"currency":"SAR","lead_id":"`+theirs.ID+`"}`,
		with(bearer(a), "Idempotency-Key", uuid.NewString())...), http.StatusUnprocessableEntity)

	var after dealView
	e.do("GET", "/api/v1/deals/"+mine.ID, "", bearer(a)...).json(t, &after)
	if after.Status != "open" || after.RunID != nil {
		t.Fatalf("A's deal after B's attempts: %+v", after)
	}
	if n := e.count(t, `SELECT count(*) FROM platform.durable_runs`); n != 0 {
		t.Fatalf("%d runs after refused closes", n)
	}
}

type runView struct {
	ID       string `json:"id"`
	Workflow string `json:"workflow"`
	Status   string `json:"status"`
	Error    string `json:"error"`
	Steps    []struct {
		Seq    int    `json:"seq"`
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"steps"`
}

type runPage struct {
	Items      []runView `json:"items"`
	NextCursor string    `json:"next_cursor"`
}

func TestAdminRunsAreTheTenantsOwnAndAdminOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantA, tenantB := newTenant(), newTenant()
	adminA, userA, adminB := bearer(e.token(tenantA, "admin")), bearer(e.token(tenantA, "leads")), bearer(e.token(tenantB, "admin"))

	// Runs that stay incomplete: each waits for a signal that never comes.
	rt := e.srv.Platform().Runtime
	waiter, err := durable.Register(rt, "test-waiter", func(ctx context.Context, in string) (string, error) {
		return durable.WaitSignal[string](ctx, "go", time.Hour)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var waiting []string
	for i := range 3 {
		run, err := waiter.StartForTenant(ctx, tenantA, "w", durable.WithRunID("waiter-"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, run.ID)
	}
	d := e.createDeal(e.token(tenantA), `{"title":"Admin view","amount":1,"currency":"SAR"}`)
	wantStatus(t, e.do("POST", "/api/v1/deals/"+d.ID+"/close", `{"outcome":"won"}`, with(userA, "Idempotency-Key", "c")...), http.StatusOK)
	e.waitRun(e.token(tenantA), d.ID)
	for _, id := range waiting { // parked, so listed as waiting
		deadline := time.Now().Add(time.Minute)
		for {
			var v runView
			e.do("GET", "/admin/runs/"+id, "", adminA...).json(t, &v)
			if v.Status == "waiting" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s never waited: %+v", id, v)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Non-admins: 403 on every route.
	for _, req := range []struct{ method, path string }{
		{"GET", "/admin/runs"}, {"GET", "/admin/runs/" + waiting[0]}, {"POST", "/admin/runs/" + waiting[0] + "/cancel"},
	} {
		wantProblem(t, e.do(req.method, req.path, "", userA...), http.StatusForbidden)
	}

	// The incomplete runs, paged oldest first.
	var page runPage
	e.do("GET", "/admin/runs?limit=2", "", adminA...).json(t, &page)
	if len(page.Items) != 2 || page.Items[0].ID != waiting[0] || page.Items[1].ID != waiting[1] || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	next := page.NextCursor
	page = runPage{}
	e.do("GET", "/admin/runs?limit=2&cursor="+next, "", adminA...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != waiting[2] || page.NextCursor != "" {
		t.Fatalf("second page %+v", page)
	}
	page = runPage{}
	e.do("GET", "/admin/runs?status=completed", "", adminA...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != deals.RunID(d.ID) || page.Items[0].Workflow != deals.WorkflowName {
		t.Fatalf("completed runs %+v", page)
	}
	wantProblem(t, e.do("GET", "/admin/runs?status=bogus", "", adminA...), http.StatusBadRequest)
	wantProblem(t, e.do("GET", "/admin/runs?cursor=bogus", "", adminA...), http.StatusBadRequest)

	// One run with its steps.
	var v runView
	e.do("GET", "/admin/runs/"+deals.RunID(d.ID), "", adminA...).json(t, &v)
	if v.Status != "completed" || len(v.Steps) != len(deals.Steps) {
		t.Fatalf("run %+v", v)
	}
	for i, s := range v.Steps {
		if s.Name != deals.Steps[i] || s.Status != "completed" {
			t.Fatalf("step %d: %+v", i, s)
		}
	}

	// Tenant B's admin sees none of it and cannot cancel it.
	page = runPage{}
	e.do("GET", "/admin/runs?status=all", "", adminB...).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("tenant B's admin sees %+v", page)
	}
	wantProblem(t, e.do("GET", "/admin/runs/"+waiting[0], "", adminB...), http.StatusNotFound)
	wantProblem(t, e.do("POST", "/admin/runs/"+waiting[0]+"/cancel", "", adminB...), http.StatusNotFound)

	// A's admin cancels; a second cancel is 409.
	r := e.do("POST", "/admin/runs/"+waiting[0]+"/cancel", `{"reason":"no longer needed"}`, adminA...)
	wantStatus(t, r, http.StatusOK)
	v = runView{}
	r.json(t, &v)
	if v.Status != "cancelled" || v.Error != "no longer needed" {
		t.Fatalf("cancelled %+v", v)
	}
	wantProblem(t, e.do("POST", "/admin/runs/"+waiting[0]+"/cancel", "", adminA...), http.StatusConflict)
	wantProblem(t, e.do("POST", "/admin/runs/nope/cancel", "", adminA...), http.StatusNotFound)
	page = runPage{}
	e.do("GET", "/admin/runs", "", adminA...).json(t, &page)
	if len(page.Items) != 2 {
		t.Fatalf("incomplete after the cancel: %+v", page)
	}
}

func TestConcurrentClosesOfOneDealCloseItOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	token := e.token(tenant)
	d := e.createDeal(token, `{"title":"Contested","amount":900,"currency":"SAR"}`)

	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			body := `{"outcome":"won"}`
			if i%2 == 1 {
				body = `{"outcome":"lost","reason":"raced"}`
			}
			// e.do may call t.Fatal, which must not run off the test's
			// goroutine: send by hand.
			req, _ := http.NewRequest("POST", e.url+"/api/v1/deals/"+d.ID+"/close", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", "racer-"+string(rune('a'+i)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, s := range statuses {
		switch s {
		case http.StatusOK:
			won++
		case http.StatusConflict:
		default:
			t.Fatalf("racer %d: status %d", i, s)
		}
	}
	if won != 1 {
		t.Fatalf("%d closes succeeded, want 1: %v", won, statuses)
	}
	e.waitRun(token, d.ID)
	if n := e.count(t, `SELECT count(*) FROM platform.durable_runs WHERE tenant_id = $1`, tenant); n != 1 {
		t.Fatalf("%d runs, want 1", n)
	}
	if n := e.count(t, `SELECT count(*) FROM dealix.deal_evidence WHERE tenant_id = $1`, tenant); n != 1 {
		t.Fatalf("%d evidence records, want 1", n)
	}
}
