package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/querycheck"
	"github.com/dealix/platform/examples/dealix/server"
)

// Every statement the server and the library send during an end-to-end
// workload names tenant_id in its predicate or its insert column list,
// unless it is one of querycheck.Exceptions, each with its reason and what
// it needs under Citus. The workload covers leads (create, replay, list
// with filters and a cursor, get, patch, score), API keys, deals and their
// durable runs, outbound campaigns with an approval and a rejection,
// HubSpot and Calendly webhooks, a checkout paid by the payment webhook,
// dead letters and re-drives, costs, the weekly pack and the deep health
// check, over JWTs and an API key; the queue workers, the durable runtime
// and the sweepers run meanwhile. A new statement that does not name the
// tenant fails here until it does or is listed with its reason.
func TestEveryStatementNamesTheTenant(t *testing.T) {
	t.Parallel()
	rec := &querycheck.Recorder{}
	e := newEnv(t, func(c *server.Config) { c.QueryTracer = rec })
	queryCheckWorkload(t, e)

	tables := tenantTables(t, e)
	stmts := rec.Statements()
	findings, matched := querycheck.Check(stmts, tables, querycheck.Exceptions)
	touching := 0
	known := map[string]bool{}
	for _, tb := range tables {
		known[tb] = true
	}
	for _, s := range stmts {
		if len(querycheck.Tables(s.SQL, known)) > 0 {
			touching++
		}
	}
	// The workload reached the library and the server: enough statements
	// over tenant tables to make the check mean something.
	if touching < 60 {
		t.Fatalf("only %d of %d statements touch a tenant table; the workload did not run", touching, len(stmts))
	}
	for _, f := range findings {
		t.Errorf("statement on %s names no tenant_id and is not in querycheck.Exceptions (roles %v):\n    %s",
			strings.Join(f.Tables, ", "), f.Statement.Roles, f.Statement.SQL)
	}
	var unused []string
	for _, ex := range querycheck.Exceptions {
		if len(matched[ex.Match]) == 0 {
			unused = append(unused, ex.Match)
		}
	}
	sort.Strings(unused)
	t.Logf("%d distinct statements, %d touching tenant tables, %d allowed by %d exceptions; exceptions not seen in this run (timers): %q",
		len(stmts), touching, countMatched(matched), len(querycheck.Exceptions)-len(unused), unused)
}

func countMatched(m map[string][]querycheck.Statement) int {
	n := 0
	for _, s := range m {
		n += len(s)
	}
	return n
}

// tenantTables reads the tables with a tenant_id column from the catalog.
func tenantTables(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.db.Admin.Query(context.Background(), `SELECT table_schema || '.' || table_name FROM information_schema.columns
		WHERE column_name = 'tenant_id' AND table_schema IN ('platform', 'dealix') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("only %d tenant tables: %v", len(names), names)
	}
	return names
}

// queryCheckWorkload drives every route family of the server once or
// twice, waiting for the background work each starts.
func queryCheckWorkload(t *testing.T, e *env) {
	tenant := newTenant()
	user := bearer(e.token(tenant))
	admin := bearer(e.token(tenant, "admin"))
	seedTenantRow(t, e, tenant, "starter")

	// Leads.
	h := with(user, "Idempotency-Key", "qc-create")
	body := `{"name":"Faisal","company":"Jeddah Clinics","email":"faisal@example.com"}`
	first := e.do("POST", "/api/v1/leads", body, h...)
	wantStatus(t, first, http.StatusCreated)
	wantStatus(t, e.do("POST", "/api/v1/leads", body, h...), http.StatusCreated)
	var l lead
	first.json(t, &l)
	for range 3 {
		e.createLead(e.token(tenant), `{"name":"Layla `+uuid.NewString()[:6]+`"}`)
	}
	var page struct {
		Items      []lead
		NextCursor string `json:"next_cursor"`
	}
	r := e.do("GET", "/api/v1/leads?limit=2", "", user...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &page)
	if page.NextCursor != "" {
		wantStatus(t, e.do("GET", "/api/v1/leads?limit=2&cursor="+page.NextCursor, "", user...), http.StatusOK)
	}
	wantStatus(t, e.do("GET", "/api/v1/leads?status=new&owner=sara&created_after="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "", user...), http.StatusOK)
	get := e.do("GET", "/api/v1/leads/"+l.ID, "", user...)
	wantStatus(t, get, http.StatusOK)
	wantStatus(t, e.do("PATCH", "/api/v1/leads/"+l.ID, `{"status":"contacted","owner":"sara"}`,
		with(user, "If-Match", get.Header.Get("ETag"), "Idempotency-Key", "qc-patch")...), http.StatusOK)
	waitScore(t, e, e.token(tenant), l.ID)

	// API keys: issue, use, list, revoke.
	r = e.do("POST", "/api/v1/api-keys", `{"name":"qc","scopes":["leads"]}`, admin...)
	wantStatus(t, r, http.StatusCreated)
	var issued struct{ ID, Key string }
	r.json(t, &issued)
	wantStatus(t, e.do("GET", "/api/v1/leads", "", "X-API-Key", issued.Key), http.StatusOK)
	wantStatus(t, e.do("GET", "/api/v1/api-keys", "", admin...), http.StatusOK)
	wantStatus(t, e.do("DELETE", "/api/v1/api-keys/"+issued.ID, "", admin...), http.StatusNoContent)

	// Deals: a close won and one lost, their durable runs, the admin view
	// of runs and a refused cancel.
	won := e.createDeal(e.token(tenant), `{"lead_id":"`+l.ID+`","title":"Rollout","amount":125050,"currency":"SAR","owner":"sara"}`)
	wantStatus(t, e.do("POST", "/api/v1/deals/"+won.ID+"/close", `{"outcome":"won"}`, with(user, "Idempotency-Key", "qc-close")...), http.StatusOK)
	lost := e.createDeal(e.token(tenant), `{"title":"Pilot","amount":5000,"currency":"SAR"}`)
	wantStatus(t, e.do("POST", "/api/v1/deals/"+lost.ID+"/close", `{"outcome":"lost","reason":"budget"}`, with(user, "Idempotency-Key", "qc-close-2")...), http.StatusOK)
	e.waitRun(e.token(tenant), won.ID)
	e.waitRun(e.token(tenant), lost.ID)
	wantStatus(t, e.do("GET", "/api/v1/deals?status=won", "", user...), http.StatusOK)
	wantStatus(t, e.do("GET", "/admin/runs?status=all", "", admin...), http.StatusOK)
	runs := e.do("GET", "/admin/runs/deal-closed-"+won.ID, "", admin...)
	wantStatus(t, runs, http.StatusOK)
	wantProblem(t, e.do("POST", "/admin/runs/deal-closed-"+won.ID+"/cancel", `{"reason":"late"}`, admin...), http.StatusConflict)

	// Outbound: one sent at once, one held and approved by another admin,
	// one held and rejected.
	sara := e.principal(tenant, "sara")
	approver := e.principal(tenant, "omar", "admin")
	c, _ := e.createCampaign(sara, campaignBody(recipients(3, "example.org"), 0.1, false), http.StatusCreated)
	e.waitSent(sara, c.Campaign.ID)
	held, _ := e.createCampaign(sara, campaignBody(recipients(2, "example.net"), 0.9, false), http.StatusAccepted)
	wantStatus(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", `{"comment":"go"}`, approver...), http.StatusOK)
	e.waitSent(sara, held.Campaign.ID)
	rejected, _ := e.createCampaign(sara, campaignBody(recipients(2, "example.com"), 0.1, true), http.StatusAccepted)
	wantStatus(t, e.do("POST", "/admin/approvals/"+rejected.ApprovalID+"/reject", `{"comment":"no"}`, approver...), http.StatusOK)
	wantStatus(t, e.do("GET", "/admin/approvals", "", approver...), http.StatusOK)
	wantStatus(t, e.do("GET", "/admin/approvals/"+held.ApprovalID, "", approver...), http.StatusOK)
	wantStatus(t, e.do("GET", "/admin/approvals/"+held.ApprovalID+"/audit", "", approver...), http.StatusOK)

	// Webhooks: HubSpot and Calendly into leads and meetings.
	wantStatus(t, e.sendHubSpot(tenant, hubspotBody(1, intake.HubSpotContactCreation, "sara@example.com", "Sara", "Riyadh Foods"), intake.DevHubSpotSecret), http.StatusOK)
	eventually(t, "the HubSpot job", func() bool { return jobStates(t, e, tenant, intake.KindHubSpotContact)["completed"] == 1 })
	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	wantStatus(t, e.sendCalendly(tenant, calendlyBody(intake.CalendlyInviteeCreated, "https://api.calendly.com/invitees/qc-1", "layla@example.com", start), intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "the Calendly job", func() bool { return jobStates(t, e, tenant, intake.KindCalendlyInvitee)["completed"] == 1 })

	// A checkout, paid by the local provider's webhook.
	r = e.do("POST", "/api/v1/checkout", `{"plan":"growth"}`, with(user, "Idempotency-Key", "qc-checkout")...)
	wantStatus(t, r, http.StatusCreated)
	var inv invoiceView
	r.json(t, &inv)
	eventually(t, "the invoice to be paid", func() bool { return e.invoice(e.token(tenant), inv.ID).Status == "paid" })

	// Dead letters: a failing handler, then re-drives by job and by queue.
	svc := e.srv.Intake()
	svc.SetMaxAttempts(1)
	svc.FailHubSpot(true)
	for i := range 2 {
		wantStatus(t, e.sendHubSpot(tenant, hubspotBody(int64(10+i), intake.HubSpotContactCreation, fmt.Sprintf("dead%d@example.com", i), "Dead", "Letters"), intake.DevHubSpotSecret), http.StatusOK)
	}
	eventually(t, "two dead jobs", func() bool { return len(e.deadJobs(e.token(tenant, "admin"), "?queue=webhooks")) == 2 })
	dead := e.deadJobs(e.token(tenant, "admin"), "?queue=webhooks")
	svc.FailHubSpot(false)
	e.dlqStats(e.token(tenant, "admin"))
	wantStatus(t, e.do("POST", fmt.Sprintf("/admin/dlq/jobs/%d/redrive", dead[0].ID), "", admin...), http.StatusOK)
	wantStatus(t, e.do("POST", "/admin/dlq/queues/webhooks/redrive", "", admin...), http.StatusOK)
	eventually(t, "the re-driven jobs", func() bool { return jobStates(t, e, tenant, intake.KindHubSpotContact)["completed"] == 3 })

	// Costs, the weekly pack, deep health.
	wantStatus(t, e.do("GET", "/admin/costs", "", admin...), http.StatusOK)
	wantStatus(t, e.do("GET", "/api/v1/reports/weekly", "", user...), http.StatusOK)
	wantStatus(t, e.do("GET", "/api/v1/reports/weekly", "", with(user, "Accept", "text/csv")...), http.StatusOK)
	wantStatus(t, e.do("GET", "/health/deep", ""), http.StatusOK)
}
