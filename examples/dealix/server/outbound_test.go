package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/examples/dealix/server"
)

// principal signs a token for tenant with an explicit subject, so two
// people of one tenant can be told apart (requester and approver).
func (e *env) principal(tenant, subject string, scopes ...string) []string {
	e.t.Helper()
	return bearer(signToken(e.t, e.key, jwt.MapClaims{
		"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": subject,
		"tenant_id": tenant, "scopes": scopes,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}))
}

type campaignView struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	ApprovalID *string `json:"approval_request_id"`
	DecidedBy  *string `json:"decided_by"`
	Counts     struct {
		Recipients, Sent, Pending int
	} `json:"counts"`
}

type campaignCreated struct {
	Campaign   campaignView `json:"campaign"`
	ApprovalID string       `json:"approval_request_id"`
	Reasons    []string     `json:"reasons"`
	StatusURL  string       `json:"status_url"`
}

func recipients(n int, domain string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r%03d@%s", i, domain)
	}
	return out
}

func campaignBody(rcpts []string, risk float64, critical bool) string {
	return fmt.Sprintf(`{"name":"Ramadan offer","message":{"subject":"Offer","body":"Hello"},"recipients":["%s"],"risk":%g,"critical":%t}`,
		strings.Join(rcpts, `","`), risk, critical)
}

// createCampaign posts a campaign and checks the status of the answer.
func (e *env) createCampaign(who []string, body string, status int) (campaignCreated, response) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/outbound/campaigns", body, with(who, "Idempotency-Key", uuid.NewString())...)
	wantStatus(e.t, r, status)
	var c campaignCreated
	r.json(e.t, &c)
	return c, r
}

func (e *env) campaign(who []string, id string) campaignView {
	e.t.Helper()
	r := e.do("GET", "/api/v1/outbound/campaigns/"+id, "", who...)
	wantStatus(e.t, r, http.StatusOK)
	var c campaignView
	r.json(e.t, &c)
	return c
}

// waitSent polls the campaign until it is sent; the bound only keeps a
// broken build from hanging, it asserts nothing about speed.
func (e *env) waitSent(who []string, id string) campaignView {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c := e.campaign(who, id)
		if c.Status == "sent" {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("campaign %s not sent within a minute: %+v", id, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mailbox returns, per recipient, the messages the fake sender delivered
// for a campaign and how many times each was handed to it.
func (e *env) mailbox(tenant, campaignID string) (messages, calls map[string]int) {
	e.t.Helper()
	rows, err := e.db.System.Query(context.Background(), `SELECT recipient, calls FROM dealix.outbound_fake_mailbox
		WHERE tenant_id = $1 AND message_key LIKE $2 || '/%'`, tenant, campaignID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	messages, calls = map[string]int{}, map[string]int{}
	for rows.Next() {
		var rcpt string
		var n int
		if err := rows.Scan(&rcpt, &n); err != nil {
			e.t.Fatal(err)
		}
		messages[rcpt]++
		calls[rcpt] += n
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return messages, calls
}

// outboundJobs counts the tenant's jobs on the outbound queue, in any state.
func (e *env) outboundJobs(tenant string) int {
	e.t.Helper()
	var n int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND queue = $2`,
		tenant, server.QueueOutbound).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func wantEachOnce(t *testing.T, rcpts []string, messages, calls map[string]int) {
	t.Helper()
	if len(messages) != len(rcpts) {
		t.Fatalf("%d recipients got a message, want %d", len(messages), len(rcpts))
	}
	for _, r := range rcpts {
		if messages[r] != 1 || calls[r] != 1 {
			t.Fatalf("%s: %d messages from %d sends, want 1 from 1", r, messages[r], calls[r])
		}
	}
}

func TestOutboundHeldCampaignIsSentOnceAfterApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	requester := e.principal(tenant, "sara", "admin")
	approver := e.principal(tenant, "omar", "admin")
	rcpts := recipients(51, "example.com")
	body := campaignBody(rcpts, 0.1, false)

	key := with(requester, "Idempotency-Key", "campaign-51")
	first := e.do("POST", "/api/v1/outbound/campaigns", body, key...)
	wantStatus(t, first, http.StatusAccepted)
	var held campaignCreated
	first.json(t, &held)
	if held.ApprovalID == "" || held.Campaign.Status != "pending_approval" || held.StatusURL != "/api/v1/outbound/campaigns/"+held.Campaign.ID ||
		first.Header.Get("Location") != held.StatusURL || len(held.Reasons) != 1 || held.Reasons[0] != string(approvals.ReasonRecipients) {
		t.Fatalf("held campaign: %s", first.body)
	}
	// The retried request gets the stored answer; one campaign, one request.
	retry := e.do("POST", "/api/v1/outbound/campaigns", body, key...)
	wantStatus(t, retry, http.StatusAccepted)
	if !equalBytes(first.body, retry.body) {
		t.Fatalf("replay differs:\n%s\n%s", first.body, retry.body)
	}
	var campaigns, requests int
	if err := e.db.System.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM dealix.outbound_campaigns WHERE tenant_id = $1),
		(SELECT count(*) FROM platform.approvals_requests WHERE tenant_id = $1)`, tenant).Scan(&campaigns, &requests); err != nil {
		t.Fatal(err)
	}
	if campaigns != 1 || requests != 1 {
		t.Fatalf("%d campaigns and %d approval requests, want 1 and 1", campaigns, requests)
	}

	// Waiting: nothing queued, nothing sent.
	c := e.campaign(requester, held.Campaign.ID)
	if c.Status != "pending_approval" || c.Counts.Recipients != 51 || c.Counts.Sent != 0 || c.Counts.Pending != 51 {
		t.Fatalf("waiting campaign %+v", c)
	}
	if n := e.outboundJobs(tenant); n != 0 {
		t.Fatalf("%d send jobs before approval", n)
	}

	// The requester cannot approve their own campaign.
	p := wantProblem(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", `{"comment":"mine"}`, requester...), http.StatusForbidden)
	if p["type"] != approvals.ProblemSelfApproval {
		t.Fatalf("self-approval problem %v", p)
	}
	if c := e.campaign(requester, held.Campaign.ID); c.Status != "pending_approval" || e.outboundJobs(tenant) != 0 {
		t.Fatalf("after self-approval: %+v", c)
	}

	// Another admin approves: the send is queued with the decision and
	// each recipient gets one message.
	r := e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", `{"comment":"go"}`, approver...)
	wantStatus(t, r, http.StatusOK)
	var d approvals.Decision
	r.json(t, &d)
	if d.Status != approvals.StatusApproved || d.DecidedBy != "omar" || d.Replayed {
		t.Fatalf("decision %s", r.body)
	}
	sent := e.waitSent(requester, held.Campaign.ID)
	if sent.Counts.Sent != 51 || sent.Counts.Pending != 0 || sent.DecidedBy == nil || *sent.DecidedBy != "omar" {
		t.Fatalf("sent campaign %+v", sent)
	}
	messages, calls := e.mailbox(tenant, held.Campaign.ID)
	wantEachOnce(t, rcpts, messages, calls)
	if n := e.outboundJobs(tenant); n != 1 {
		t.Fatalf("%d send jobs, want 1", n)
	}

	// A second decision cannot flip the first, whoever makes it.
	for _, who := range [][]string{approver, requester} {
		p = wantProblem(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/reject", `{"comment":"stop"}`, who...), http.StatusConflict)
		if p["type"] != approvals.ProblemAlreadyDecided || !strings.Contains(p["detail"].(string), "already decided") {
			t.Fatalf("second decision: %v", p)
		}
	}
	// The same decision again is a replay, not a second send.
	r = e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", "", approver...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &d)
	if !d.Replayed {
		t.Fatalf("repeated approval: %s", r.body)
	}
	var req approvals.Request
	e.do("GET", "/admin/approvals/"+held.ApprovalID, "", approver...).json(t, &req)
	if req.Status != approvals.StatusApproved || req.DecidedBy != "omar" || req.Comment != "go" || req.RequestedBy != "sara" {
		t.Fatalf("request after the second decisions: %+v", req)
	}
	if c := e.campaign(requester, held.Campaign.ID); c.Status != "sent" || e.outboundJobs(tenant) != 1 {
		t.Fatalf("after the second decisions: %+v", c)
	}
	messages, calls = e.mailbox(tenant, held.Campaign.ID)
	wantEachOnce(t, rcpts, messages, calls)

	// The audit trail has every attempt, refusals included, in order.
	var audit struct{ Items []approvals.AuditEntry }
	r = e.do("GET", "/admin/approvals/"+held.ApprovalID+"/audit", "", approver...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &audit)
	var got []string
	for _, a := range audit.Items {
		got = append(got, a.Actor+":"+a.Action+":"+string(a.Result))
	}
	want := "sara:approve:self_approval omar:approve:accepted omar:reject:conflict sara:reject:conflict omar:approve:replayed"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit trail\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func TestOutboundRejectedCampaignSendsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	requester := e.principal(tenant, "sara")
	approver := e.principal(tenant, "omar", "admin")

	for _, c := range []struct {
		name     string
		risk     float64
		critical bool
		reason   approvals.Reason
	}{
		{"risky", 0.7, false, approvals.ReasonRisk},
		{"critical", 0, true, approvals.ReasonCritical},
	} {
		held, _ := e.createCampaign(requester, campaignBody(recipients(10, c.name+".example.com"), c.risk, c.critical), http.StatusAccepted)
		if len(held.Reasons) != 1 || held.Reasons[0] != string(c.reason) {
			t.Fatalf("%s: reasons %v", c.name, held.Reasons)
		}
		wantStatus(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/reject", `{"comment":"too risky"}`, approver...), http.StatusOK)
		if got := e.campaign(requester, held.Campaign.ID); got.Status != "rejected" || got.Counts.Sent != 0 {
			t.Fatalf("%s: rejected campaign %+v", c.name, got)
		}
		// Approving afterwards cannot revive it.
		p := wantProblem(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", "", approver...), http.StatusConflict)
		if p["type"] != approvals.ProblemAlreadyDecided {
			t.Fatalf("%s: approve after reject: %v", c.name, p)
		}
		if got := e.campaign(requester, held.Campaign.ID); got.Status != "rejected" {
			t.Fatalf("%s: after the late approval: %+v", c.name, got)
		}
	}
	// Nothing was ever queued, so nothing can be sent.
	if n := e.outboundJobs(tenant); n != 0 {
		t.Fatalf("%d send jobs for rejected campaigns", n)
	}
	var mailbox int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM dealix.outbound_fake_mailbox WHERE tenant_id = $1`, tenant).Scan(&mailbox); err != nil {
		t.Fatal(err)
	}
	if mailbox != 0 {
		t.Fatalf("%d messages for rejected campaigns", mailbox)
	}
}

func TestOutboundUnheldCampaignIsSentWithoutApproval(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	user := e.principal(tenant, "sara")
	rcpts := recipients(10, "example.org")

	c, r := e.createCampaign(user, campaignBody(rcpts, 0.69, false), http.StatusCreated)
	if c.ApprovalID != "" || c.Campaign.ApprovalID != nil || r.Header.Get("Location") != c.StatusURL {
		t.Fatalf("unheld campaign: %s", r.body)
	}
	sent := e.waitSent(user, c.Campaign.ID)
	if sent.Counts.Sent != 10 || sent.Counts.Pending != 0 {
		t.Fatalf("sent campaign %+v", sent)
	}
	messages, calls := e.mailbox(tenant, c.Campaign.ID)
	wantEachOnce(t, rcpts, messages, calls)
	var page struct{ Items []approvals.Request }
	e.do("GET", "/admin/approvals", "", e.principal(tenant, "omar", "admin")...).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("an unheld campaign left %d approval requests", len(page.Items))
	}
}

func TestOutboundCampaignInputIsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := e.principal(newTenant(), "sara")
	for name, body := range map[string]string{
		"no recipients":      campaignBody(nil, 0, false),
		"not an address":     campaignBody([]string{"nobody"}, 0, false),
		"repeated recipient": campaignBody([]string{"a@x.example", "A@x.example"}, 0, false),
		"risk above 1":       campaignBody([]string{"a@x.example"}, 1.5, false),
		"negative risk":      campaignBody([]string{"a@x.example"}, -0.1, false),
		"two-line subject":   `{"name":"n","message":{"subject":"a\nBcc: x@y","body":"b"},"recipients":["a@x.example"]}`,
		"no message":         `{"name":"n","recipients":["a@x.example"]}`,
		"unknown field":      `{"name":"n","message":{"subject":"s","body":"b"},"recipients":["a@x.example"],"tenant_id":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, e.do("POST", "/api/v1/outbound/campaigns", body, with(user, "Idempotency-Key", uuid.NewString())...), http.StatusBadRequest)
		})
	}
	// The key is required.
	wantProblem(t, e.do("POST", "/api/v1/outbound/campaigns", campaignBody([]string{"a@x.example"}, 0, false), user...), http.StatusBadRequest)
	wantProblem(t, e.do("GET", "/api/v1/outbound/campaigns/not-a-uuid", "", user...), http.StatusNotFound)
	wantProblem(t, e.do("GET", "/api/v1/outbound/campaigns/"+uuid.NewString(), "", user...), http.StatusNotFound)
}

func TestAdminApprovalsNeedAdminAndStayInTheTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantA, tenantB := newTenant(), newTenant()
	requester := e.principal(tenantA, "sara")
	adminA := e.principal(tenantA, "omar", "admin")
	adminB := e.principal(tenantB, "eve", "admin")
	held, _ := e.createCampaign(requester, campaignBody(recipients(3, "a.example"), 0.9, false), http.StatusAccepted)
	id := held.ApprovalID

	routes := []struct{ method, path, body string }{
		{"GET", "/admin/approvals", ""},
		{"GET", "/admin/approvals/" + id, ""},
		{"GET", "/admin/approvals/" + id + "/audit", ""},
		{"POST", "/admin/approvals/" + id + "/approve", `{"comment":"x"}`},
		{"POST", "/admin/approvals/" + id + "/reject", `{"comment":"x"}`},
	}
	for _, rt := range routes {
		// Not an admin (the requester herself, or a key with other scopes): 403.
		wantProblem(t, e.do(rt.method, rt.path, rt.body, requester...), http.StatusForbidden)
		wantProblem(t, e.do(rt.method, rt.path, rt.body, e.principal(tenantA, "lee", "leads")...), http.StatusForbidden)
		wantProblem(t, e.do(rt.method, rt.path, rt.body), http.StatusUnauthorized)
		// Another tenant's admin: the request is not there.
		if rt.path != "/admin/approvals" {
			wantProblem(t, e.do(rt.method, rt.path, rt.body, adminB...), http.StatusNotFound)
		}
	}
	var page struct{ Items []approvals.Request }
	e.do("GET", "/admin/approvals", "", adminB...).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("tenant B's admin lists %d of A's requests", len(page.Items))
	}
	// B's campaign status URL does not show A's campaign either.
	wantProblem(t, e.do("GET", held.StatusURL, "", adminB...), http.StatusNotFound)
	// Nothing B tried changed A's request.
	var req approvals.Request
	r := e.do("GET", "/admin/approvals/"+id, "", adminA...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &req)
	if req.Status != approvals.StatusPending || req.TenantID != tenantA {
		t.Fatalf("A's request after B's attempts: %+v", req)
	}
	var audit struct{ Items []approvals.AuditEntry }
	e.do("GET", "/admin/approvals/"+id+"/audit", "", adminA...).json(t, &audit)
	if len(audit.Items) != 0 {
		t.Fatalf("audit trail after refused attempts only: %+v", audit.Items)
	}
}

func TestAdminApprovalsListPendingFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	requester := e.principal(tenant, "sara")
	admin := e.principal(tenant, "omar", "admin")
	var ids []string
	for i := range 5 {
		held, _ := e.createCampaign(requester, campaignBody(recipients(2, fmt.Sprintf("c%d.example", i)), 0.8, false), http.StatusAccepted)
		ids = append(ids, held.ApprovalID)
	}
	// The two oldest are decided, so the newest-first order alone would
	// not put the pending ones first.
	wantStatus(t, e.do("POST", "/admin/approvals/"+ids[0]+"/approve", "", admin...), http.StatusOK)
	wantStatus(t, e.do("POST", "/admin/approvals/"+ids[1]+"/reject", "", admin...), http.StatusOK)

	var order []string
	statuses := map[string]approvals.Status{}
	next, pages := "", 0
	for {
		path := "/admin/approvals?limit=2"
		if next != "" {
			path += "&cursor=" + next
		}
		var page struct {
			Items      []approvals.Request
			NextCursor string `json:"next_cursor"`
		}
		r := e.do("GET", path, "", admin...)
		wantStatus(t, r, http.StatusOK)
		r.json(t, &page)
		pages++
		for _, req := range page.Items {
			order = append(order, req.ID)
			statuses[req.ID] = req.Status
		}
		if next = page.NextCursor; next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("the cursor never ends")
		}
	}
	want := []string{ids[4], ids[3], ids[2], ids[0], ids[1]} // pending newest first, then approved, then rejected
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("order %v, want %v (%v)", order, want, statuses)
	}
	var page struct{ Items []approvals.Request }
	e.do("GET", "/admin/approvals?status=rejected", "", admin...).json(t, &page)
	if len(page.Items) != 1 || page.Items[0].ID != ids[1] {
		t.Fatalf("status=rejected: %+v", page.Items)
	}
	for _, q := range []string{"?status=maybe", "?limit=0", "?cursor=!!!", "?tenant=x", "?status=pending&status=approved"} {
		wantProblem(t, e.do("GET", "/admin/approvals"+q, "", admin...), http.StatusBadRequest)
	}
	wantProblem(t, e.do("GET", "/admin/approvals/not-a-uuid", "", admin...), http.StatusNotFound)
	wantProblem(t, e.do("POST", "/admin/approvals/"+ids[2]+"/approve", `{"comment":`, admin...), http.StatusBadRequest)
}

func TestConcurrentDecisionsOnACampaignOneWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	requester := e.principal(tenant, "sara")
	for round := range 3 {
		rcpts := recipients(60, fmt.Sprintf("round%d.example", round))
		held, _ := e.createCampaign(requester, campaignBody(rcpts, 0, false), http.StatusAccepted)

		// Eight admins decide at once, half approving, half rejecting.
		type answer struct {
			approve bool
			status  int
			d       approvals.Decision
		}
		answers := make(chan answer, 8)
		start := make(chan struct{})
		for i := range 8 {
			who := e.principal(tenant, fmt.Sprintf("admin-%d", i), "admin")
			verb := "reject"
			if i%2 == 0 {
				verb = "approve"
			}
			go func() {
				<-start
				// Not e.do: it may fail the test, which only the test's
				// goroutine may do.
				a := answer{approve: verb == "approve"}
				req, _ := http.NewRequest("POST", e.url+"/admin/approvals/"+held.ApprovalID+"/"+verb, nil)
				req.Header.Set(who[0], who[1])
				if resp, err := http.DefaultClient.Do(req); err == nil {
					a.status = resp.StatusCode
					if resp.StatusCode == http.StatusOK {
						_ = json.NewDecoder(resp.Body).Decode(&a.d)
					}
					resp.Body.Close()
				}
				answers <- a
			}()
		}
		close(start)
		winners, replays := 0, 0
		var won *answer
		var all []answer
		for range 8 {
			all = append(all, <-answers)
		}
		for i, a := range all {
			if a.status == http.StatusOK && !a.d.Replayed {
				winners++
				won = &all[i]
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d decisions won: %+v", round, winners, all)
		}
		for _, a := range all {
			switch {
			case a.approve == won.approve && a.status == http.StatusOK:
				if a.d.Replayed {
					replays++
				}
			case a.approve != won.approve && a.status == http.StatusConflict:
			default:
				t.Fatalf("round %d: winner approve=%v, and an answer %+v", round, won.approve, a)
			}
		}
		if replays != 3 {
			t.Fatalf("round %d: %d replays of the winning decision, want 3", round, replays)
		}
		if won.approve {
			e.waitSent(requester, held.Campaign.ID)
			messages, calls := e.mailbox(tenant, held.Campaign.ID)
			wantEachOnce(t, rcpts, messages, calls)
		} else {
			messages, _ := e.mailbox(tenant, held.Campaign.ID)
			if c := e.campaign(requester, held.Campaign.ID); c.Status != "rejected" || len(messages) != 0 {
				t.Fatalf("round %d: rejected campaign %+v with %d messages", round, c, len(messages))
			}
		}
	}
}

func TestOutboundCampaignWhoseApprovalExpiredIsNeverSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	requester := e.principal(tenant, "sara")
	admin := e.principal(tenant, "omar", "admin")
	held, _ := e.createCampaign(requester, campaignBody(recipients(5, "late.example"), 0.95, false), http.StatusAccepted)
	// Three days pass: the request's time runs out undecided.
	if _, err := e.db.Admin.Exec(context.Background(), `UPDATE platform.approvals_requests
		SET created_at = now() - interval '73 hours', expires_at = now() - interval '1 hour' WHERE id = $1`, held.ApprovalID); err != nil {
		t.Fatal(err)
	}
	if c := e.campaign(requester, held.Campaign.ID); c.Status != "expired" {
		t.Fatalf("campaign of an expired request: %+v", c)
	}
	p := wantProblem(t, e.do("POST", "/admin/approvals/"+held.ApprovalID+"/approve", "", admin...), http.StatusConflict)
	if p["type"] != approvals.ProblemExpired {
		t.Fatalf("late approval: %v", p)
	}
	if n := e.outboundJobs(tenant); n != 0 {
		t.Fatalf("%d send jobs for an expired campaign", n)
	}
}
