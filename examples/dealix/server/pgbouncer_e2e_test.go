package server_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/dealix/platform/examples/dealix/deals"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/internal/pgtest"
)

// newPgBouncerEnv is newEnv with the app and system pools going through
// the binary's PgBouncer in transaction mode, whether or not the suite's
// switch is set. What needs one session stays direct: the owner
// (migrations hold a session advisory lock from the first migration to
// the last) and the queue workers' LISTEN connection.
func newPgBouncerEnv(t *testing.T) (*env, *pgBouncer) {
	t.Helper()
	db := pgtest.New(t)
	b := bouncerFor(t, db)
	return newEnvOn(t, db, pooledURLs(t, b, db)), b
}

func TestThroughPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	e, b := newPgBouncerEnv(t)
	ctx := context.Background()
	before := b.stats(t, e.db.Name)

	tenant := newTenant()
	token := e.token(tenant)
	tok := bearer(token)

	// Leads: create, its replay, list, get, a conditional update.
	h := with(tok, "Idempotency-Key", "pgb-create")
	body := `{"name":"Faisal","company":"Jeddah Clinics"}`
	first := e.do("POST", "/api/v1/leads", body, h...)
	wantStatus(t, first, http.StatusCreated)
	retry := e.do("POST", "/api/v1/leads", body, h...)
	wantStatus(t, retry, http.StatusCreated)
	if !equalBytes(first.body, retry.body) || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay (replayed %q):\n%s\n%s", retry.Header.Get("Idempotent-Replayed"), first.body, retry.body)
	}
	wantProblem(t, e.do("POST", "/api/v1/leads", `{"name":"Other"}`, h...), http.StatusUnprocessableEntity)
	var l lead
	first.json(t, &l)
	second := e.createLead(token, `{"name":"Layla"}`)

	var page struct{ Items []lead }
	list := e.do("GET", "/api/v1/leads", "", tok...)
	wantStatus(t, list, http.StatusOK)
	list.json(t, &page)
	ids := []string{}
	for _, it := range page.Items {
		ids = append(ids, it.ID)
	}
	if len(ids) != 2 || !slices.Contains(ids, l.ID) || !slices.Contains(ids, second.ID) {
		t.Fatalf("list %v, want %s and %s", ids, l.ID, second.ID)
	}
	// Another tenant sees none of them: the tenant setting is transaction
	// local, so it does not follow a server connection to its next client.
	var otherPage struct{ Items []lead }
	e.do("GET", "/api/v1/leads", "", bearer(e.token(newTenant()))...).json(t, &otherPage)
	if len(otherPage.Items) != 0 {
		t.Fatalf("another tenant lists %d leads", len(otherPage.Items))
	}

	path := "/api/v1/leads/" + l.ID
	get := e.do("GET", path, "", tok...)
	wantStatus(t, get, http.StatusOK)
	etag := get.Header.Get("ETag")
	if etag != `"v1"` {
		t.Fatalf("ETag %q", etag)
	}
	upd := e.do("PATCH", path, `{"status":"contacted","owner":"sara"}`, with(tok, "If-Match", etag)...)
	wantStatus(t, upd, http.StatusOK)
	var got lead
	upd.json(t, &got)
	if got.Status != "contacted" || got.Owner == nil || *got.Owner != "sara" || upd.Header.Get("ETag") != `"v2"` {
		t.Fatalf("updated %s (ETag %s)", upd.body, upd.Header.Get("ETag"))
	}
	wantProblem(t, e.do("PATCH", path, `{"status":"lost"}`, with(tok, "If-Match", etag)...), http.StatusPreconditionFailed)

	// A deal closed: its durable run completes and leaves evidence.
	d := e.createDeal(token, `{"lead_id":"`+l.ID+`","title":"Clinic rollout","amount":125050,"currency":"SAR","owner":"sara"}`)
	closePath := "/api/v1/deals/" + d.ID + "/close"
	ch := with(tok, "Idempotency-Key", "pgb-close", "X-Correlation-ID", "corr-pgb")
	closed := e.do("POST", closePath, `{"outcome":"won"}`, ch...)
	wantStatus(t, closed, http.StatusOK)
	again := e.do("POST", closePath, `{"outcome":"won"}`, ch...)
	if !equalBytes(closed.body, again.body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("close replay differs:\n%s\n%s", closed.body, again.body)
	}
	run := e.waitRun(token, d.ID)
	if ev := run.Evidence; ev == nil || ev.Outcome != "won" || ev.Amount != 125050 || ev.RunID != deals.RunID(d.ID) || ev.CorrelationID != "corr-pgb" {
		t.Fatalf("evidence %+v", run.Evidence)
	}

	// An outbound campaign below the approval threshold is sent, once to
	// each recipient, by the queue workers.
	sara := e.principal(tenant, "sara")
	rcpts := recipients(6, "example.org")
	c, _ := e.createCampaign(sara, campaignBody(rcpts, 0.1, false), http.StatusCreated)
	sent := e.waitSent(sara, c.Campaign.ID)
	if sent.Counts.Sent != len(rcpts) || sent.Counts.Pending != 0 {
		t.Fatalf("sent campaign %+v", sent)
	}
	messages, calls := e.mailbox(tenant, c.Campaign.ID)
	wantEachOnce(t, rcpts, messages, calls)

	// An intake webhook: its job is processed into a lead.
	var ans ingestAnswer
	r := e.sendHubSpot(tenant, hubspotBody(1, intake.HubSpotContactCreation, "sara@example.com", "Sara", "Riyadh Foods"), intake.DevHubSpotSecret)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "accepted" || len(ans.Jobs) != 1 {
		t.Fatalf("webhook answered %s", r.body)
	}
	eventually(t, "the HubSpot job to complete", func() bool {
		return jobStates(t, e, tenant, intake.KindHubSpotContact)["completed"] == 1
	})
	if n, name, company := leadsByEmail(t, e, tenant, "sara@example.com"); n != 1 || name != "Sara Test" || company != "Riyadh Foods" {
		t.Fatalf("HubSpot lead: %d, %q, %q", n, name, company)
	}

	// PgBouncer carried the requests and the workers' queries: its
	// counters for this database grew by at least one transaction per
	// request above, and it never opened more server connections per role
	// than its pool size.
	after := b.stats(t, e.db.Name)
	xacts := statInt(t, after, "total_xact_count") - statInt(t, before, "total_xact_count")
	queries := statInt(t, after, "total_query_count") - statInt(t, before, "total_query_count")
	if xacts < 20 || queries < xacts {
		t.Fatalf("through PgBouncer: %d transactions, %d queries; want the sweep's traffic", xacts, queries)
	}
	t.Logf("through PgBouncer: %d transactions, %d queries", xacts, queries)
	pools, err := b.show(ctx, "POOLS")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]bool{}
	for _, p := range pools {
		if p["database"] != e.db.Name {
			continue
		}
		roles[p["user"]] = true
		servers := 0
		for _, col := range []string{"sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"} {
			n, _ := strconv.Atoi(p[col])
			servers += n
		}
		if servers > pgbouncerPoolSize {
			t.Fatalf("pool %s holds %d server connections, more than %d", p["user"], servers, pgbouncerPoolSize)
		}
	}
	if !roles[pgtest.AppRole] || !roles[pgtest.SystemRole] {
		t.Fatalf("PgBouncer pools %v, want the app and the system role", roles)
	}

	// The workers' LISTEN is on a direct session, not on one of
	// PgBouncer's server connections.
	servers, err := b.show(ctx, "SERVERS")
	if err != nil {
		t.Fatal(err)
	}
	pooledPorts := map[int]bool{}
	for _, s := range servers {
		n, _ := strconv.Atoi(s["local_port"])
		pooledPorts[n] = true
	}
	var listenPorts []int
	rows, err := e.db.Admin.Query(ctx, `SELECT client_port FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN dlq_jobs' AND client_port IS NOT NULL`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		listenPorts = append(listenPorts, p)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(listenPorts) == 0 {
		t.Fatal("no session LISTENs on dlq_jobs")
	}
	for _, p := range listenPorts {
		if pooledPorts[p] {
			t.Fatalf("the LISTEN session (client port %d) is one of PgBouncer's server connections", p)
		}
	}
}
