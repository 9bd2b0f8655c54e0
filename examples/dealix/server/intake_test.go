package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/webhooksig"
)

// eventually polls cond until it holds, failing the test after a minute:
// background work (the fake provider, the queue workers) is awaited, not
// timed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seedTenantRow gives tenant its row in dealix.tenants, on plan.
func seedTenantRow(t *testing.T, e *env, tenant, plan string) {
	t.Helper()
	if _, err := e.db.System.Exec(context.Background(),
		`INSERT INTO dealix.tenants (tenant_id, name, plan) VALUES ($1, 'Test Co.', $2)`, tenant, plan); err != nil {
		t.Fatal(err)
	}
}

func tenantPlan(t *testing.T, e *env, tenant string) string {
	t.Helper()
	var plan string
	if err := e.db.System.QueryRow(context.Background(), `SELECT plan FROM dealix.tenants WHERE tenant_id = $1`, tenant).Scan(&plan); err != nil {
		t.Fatal(err)
	}
	return plan
}

// jobStates counts the tenant's jobs of kind by state.
func jobStates(t *testing.T, e *env, tenant, kind string) map[string]int {
	t.Helper()
	rows, err := e.db.System.Query(context.Background(),
		`SELECT state, count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND kind = $2 GROUP BY state`, tenant, kind)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type invoiceView struct {
	ID                string     `json:"id"`
	Plan              string     `json:"plan"`
	Status            string     `json:"status"`
	AmountHalalas     int64      `json:"amount_halalas"`
	Currency          string     `json:"currency"`
	ProviderInvoiceID *string    `json:"provider_invoice_id"`
	PaymentURL        *string    `json:"payment_url"`
	PaidAt            *time.Time `json:"paid_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

func (e *env) invoice(token, id string) invoiceView {
	e.t.Helper()
	r := e.do("GET", "/api/v1/invoices/"+id, "", bearer(token)...)
	wantStatus(e.t, r, http.StatusOK)
	var inv invoiceView
	r.json(e.t, &inv)
	return inv
}

type ingestAnswer struct {
	Status string  `json:"status"`
	Jobs   []int64 `json:"jobs"`
}

func TestCheckoutIsPaidOnceWhateverTheDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	seedTenantRow(t, e, tenant, "starter")
	tok := e.token(tenant)
	key := with(bearer(tok), "Idempotency-Key", "checkout-1")

	wantProblem(t, e.do("POST", "/api/v1/checkout", `{"plan":"growth"}`, bearer(tok)...), http.StatusBadRequest)
	wantProblem(t, e.do("POST", "/api/v1/checkout", `{"plan":"nope"}`, with(bearer(tok), "Idempotency-Key", "bad-plan")...), http.StatusBadRequest)
	wantProblem(t, e.do("POST", "/api/v1/checkout", `{"plan":"growth"}`, "Idempotency-Key", "anon"), http.StatusUnauthorized)

	first := e.do("POST", "/api/v1/checkout", `{"plan":"growth"}`, key...)
	wantStatus(t, first, http.StatusCreated)
	var inv invoiceView
	first.json(t, &inv)
	if inv.Plan != "growth" || inv.AmountHalalas != 149900 || inv.Currency != "SAR" || inv.ProviderInvoiceID == nil || inv.PaymentURL == nil {
		t.Fatalf("checkout answered %s", first.body)
	}
	retry := e.do("POST", "/api/v1/checkout", `{"plan":"growth"}`, key...)
	wantStatus(t, retry, http.StatusCreated)
	if !equalBytes(first.body, retry.body) || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retried checkout: %s", retry.body)
	}
	var invoices int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM dealix.invoices WHERE tenant_id = $1`, tenant).Scan(&invoices); err != nil {
		t.Fatal(err)
	}
	if invoices != 1 {
		t.Fatalf("%d invoices after a retried checkout, want 1", invoices)
	}
	// Another tenant does not see it.
	wantProblem(t, e.do("GET", "/api/v1/invoices/"+inv.ID, "", bearer(e.token(newTenant()))...), http.StatusNotFound)

	// The fake provider pays it and calls the webhook (delivery 1).
	eventually(t, "the invoice to be paid", func() bool { return e.invoice(tok, inv.ID).Status == "paid" })
	paid := e.invoice(tok, inv.ID)
	if paid.PaidAt == nil || tenantPlan(t, e, tenant) != "growth" {
		t.Fatalf("paid invoice %+v, plan %q", paid, tenantPlan(t, e, tenant))
	}
	delivered := e.srv.PaymentFake().Delivered()
	var original []byte
	for _, body := range delivered {
		if strings.Contains(string(body), *inv.ProviderInvoiceID) {
			original = body
		}
	}
	if original == nil {
		t.Fatalf("the fake delivered no event for invoice %s", *inv.ProviderInvoiceID)
	}
	var ev billing.Event
	if err := json.Unmarshal(original, &ev); err != nil {
		t.Fatal(err)
	}

	// A forged delivery (wrong token): 401, nothing changes.
	forged, err := webhooksig.SignMoyasar("not-the-token", billing.EventBody(ev))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.do("POST", "/webhooks/moyasar", string(forged)), http.StatusUnauthorized)

	// Delivery 2 of the same event: acknowledged, nothing enqueued.
	var ans ingestAnswer
	r := e.do("POST", "/webhooks/moyasar", string(original))
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "duplicate" || len(ans.Jobs) != 0 {
		t.Fatalf("redelivery answered %s", r.body)
	}

	// Another event, out of order: an earlier attempt's failure arriving
	// after the payment. It is processed, and does not un-pay the invoice.
	failed := ev
	failed.ID = uuid.NewString()
	failed.Type = billing.EventPaymentFailed
	failed.CreatedAt = ev.CreatedAt.Add(-time.Minute)
	failed.Data.ID = uuid.NewString()
	failed.Data.Status = "failed"
	failedBody, err := webhooksig.SignMoyasar(billing.DevWebhookToken, billing.EventBody(failed))
	if err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/webhooks/moyasar", string(failedBody))
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "accepted" || len(ans.Jobs) != 1 {
		t.Fatalf("failure event answered %s", r.body)
	}

	// Delivery 3 of the paid event.
	r = e.do("POST", "/webhooks/moyasar", string(original))
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "duplicate" {
		t.Fatalf("third delivery answered %s", r.body)
	}

	eventually(t, "both events' jobs to complete", func() bool {
		return jobStates(t, e, tenant, billing.KindMoyasarEvent)["completed"] == 2
	})
	if states := jobStates(t, e, tenant, billing.KindMoyasarEvent); len(states) != 1 {
		t.Fatalf("moyasar jobs by state: %v, want 2 completed and nothing else", states)
	}
	after := e.invoice(tok, inv.ID)
	if after.Status != "paid" || !after.PaidAt.Equal(*paid.PaidAt) || !after.UpdatedAt.Equal(paid.UpdatedAt) {
		t.Fatalf("after the redeliveries: %+v, before: %+v", after, paid)
	}
	if plan := tenantPlan(t, e, tenant); plan != "growth" {
		t.Fatalf("plan %q", plan)
	}
}

// hubspotBody is a HubSpot webhook request of one contact event.
func hubspotBody(eventID int64, subscription, email, first, company string) string {
	ev := intake.HubSpotEvent{
		EventID: eventID, SubscriptionID: 7, PortalID: 4242, AppID: 99, OccurredAt: time.Now().UnixMilli(),
		SubscriptionType: subscription, ObjectID: 1000 + eventID, ChangeSource: "CRM",
		Properties: map[string]string{"email": email, "firstname": first, "lastname": "Test", "company": company},
	}
	b, _ := json.Marshal([]intake.HubSpotEvent{ev})
	return string(b)
}

// sendHubSpot signs body as HubSpot does for the tenant's route.
func (e *env) sendHubSpot(tenant, body, secret string) response {
	e.t.Helper()
	path := "/webhooks/hubspot/" + tenant
	ts, sig := webhooksig.SignHubSpotV3(secret, "POST", e.url+path, []byte(body), time.Now())
	return e.do("POST", path, body, webhooksig.HubSpotTimestampHeader, ts, webhooksig.HubSpotSignatureV3Header, sig)
}

func (e *env) sendCalendly(tenant, body, secret string) response {
	e.t.Helper()
	return e.sendCalendlyAt(tenant, body, secret, time.Now())
}

// sendCalendlyAt signs at: Calendly signs whole seconds, so two sends of
// one body within a second are one delivery.
func (e *env) sendCalendlyAt(tenant, body, secret string, at time.Time) response {
	e.t.Helper()
	return e.do("POST", "/webhooks/calendly/"+tenant, body,
		webhooksig.CalendlySignatureHeader, webhooksig.SignCalendly(secret, at, []byte(body)))
}

type deadJobView struct {
	ID          int64           `json:"id"`
	Queue       string          `json:"queue"`
	Kind        string          `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	Errors      []struct {
		Attempt int    `json:"attempt"`
		Error   string `json:"error"`
	} `json:"errors"`
}

func (e *env) deadJobs(token, query string) []deadJobView {
	e.t.Helper()
	r := e.do("GET", "/admin/dlq/dead"+query, "", bearer(token)...)
	wantStatus(e.t, r, http.StatusOK)
	var page struct{ Items []deadJobView }
	r.json(e.t, &page)
	return page.Items
}

type queueView struct {
	Queue                  string  `json:"queue"`
	Depth                  *int64  `json:"depth"`
	Available              int64   `json:"available"`
	Running                *int64  `json:"running"`
	Retrying               *int64  `json:"retrying"`
	Dead                   *int64  `json:"dead"`
	OldestAvailableSeconds float64 `json:"oldest_available_age_seconds"`
}

func (e *env) dlqStats(token string) map[string]queueView {
	e.t.Helper()
	r := e.do("GET", "/admin/dlq/stats", "", bearer(token)...)
	wantStatus(e.t, r, http.StatusOK)
	var body struct{ Queues []queueView }
	r.json(e.t, &body)
	out := map[string]queueView{}
	for _, q := range body.Queues {
		if q.Depth == nil || q.Running == nil || q.Retrying == nil || q.Dead == nil {
			e.t.Fatalf("queue without its counts: %s", r.body)
		}
		out[q.Queue] = q
	}
	return out
}

func leadsByEmail(t *testing.T, e *env, tenant, email string) (n int, name, company string) {
	t.Helper()
	err := e.db.System.QueryRow(context.Background(), `SELECT count(*), coalesce(max(name), ''), coalesce(max(company), '')
		FROM dealix.leads WHERE tenant_id = $1 AND email = $2`, tenant, email).Scan(&n, &name, &company)
	if err != nil {
		t.Fatal(err)
	}
	return n, name, company
}

func TestFailingHubSpotHandlerIsDeadLetteredThenRedriven(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.srv.Intake()
	svc.SetMaxAttempts(2)
	svc.FailHubSpot(true)
	tenant, other := newTenant(), newTenant()
	admin, otherAdmin, user := e.token(tenant, "admin"), e.token(other, "admin"), e.token(tenant, "leads")

	// Refused before anything is stored: a bad signature, a wrong secret,
	// a route that names no tenant.
	body := hubspotBody(1, intake.HubSpotContactCreation, "Sara@Example.com", "Sara", "Riyadh Foods")
	wantProblem(t, e.sendHubSpot(tenant, body, "wrong-secret"), http.StatusUnauthorized)
	wantProblem(t, e.do("POST", "/webhooks/hubspot/"+tenant, body), http.StatusBadRequest)
	wantProblem(t, e.sendHubSpot("acme", body, intake.DevHubSpotSecret), http.StatusNotFound)

	var ans ingestAnswer
	r := e.sendHubSpot(tenant, body, intake.DevHubSpotSecret)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "accepted" || len(ans.Jobs) != 1 {
		t.Fatalf("first delivery answered %s", r.body)
	}
	// Omar was typed in through the API before HubSpot knew him: his
	// contact updates that lead rather than adding one.
	e.createLead(e.token(tenant), `{"name":"Omar typed","email":"omar@example.com"}`)
	second := hubspotBody(2, intake.HubSpotContactCreation, "omar@example.com", "Omar", "Jeddah Clinics")
	wantStatus(t, e.sendHubSpot(tenant, second, intake.DevHubSpotSecret), http.StatusOK)

	eventually(t, "both jobs to be dead", func() bool { return len(e.deadJobs(admin, "?queue=webhooks")) == 2 })
	dead := e.deadJobs(admin, "?queue=webhooks")
	for _, j := range dead {
		if j.Kind != intake.KindHubSpotContact || j.Attempts != 2 || j.MaxAttempts != 2 || len(j.Errors) != 2 ||
			!strings.Contains(j.Errors[1].Error, "switched to fail") || !strings.Contains(strings.ToLower(string(j.Payload)), "example.com") {
			t.Fatalf("dead job %+v", j)
		}
	}
	if n := len(e.deadJobs(admin, "?queue=outbound")); n != 0 {
		t.Fatalf("%d dead outbound jobs", n)
	}
	if n, _, _ := leadsByEmail(t, e, tenant, "sara@example.com"); n != 0 {
		t.Fatalf("%d leads while the handler fails", n)
	}

	stats := e.dlqStats(admin)
	for _, q := range server.Queues {
		if _, ok := stats[q]; !ok {
			t.Fatalf("stats lack queue %q: %+v", q, stats)
		}
	}
	if *stats["webhooks"].Dead != 2 {
		t.Fatalf("webhooks stats %+v", stats["webhooks"])
	}

	// Non-admins get 403 on every route; another tenant's admin sees none
	// of these jobs and cannot re-drive them.
	jobID := fmt.Sprint(dead[0].ID)
	for _, rt := range []struct{ method, path string }{
		{"GET", "/admin/dlq/stats"}, {"GET", "/admin/dlq/dead"},
		{"POST", "/admin/dlq/jobs/" + jobID + "/redrive"}, {"POST", "/admin/dlq/queues/webhooks/redrive"},
	} {
		wantProblem(t, e.do(rt.method, rt.path, "", bearer(user)...), http.StatusForbidden)
		wantProblem(t, e.do(rt.method, rt.path, ""), http.StatusUnauthorized)
	}
	if n := len(e.deadJobs(otherAdmin, "")); n != 0 {
		t.Fatalf("another tenant's admin sees %d dead jobs", n)
	}
	if s := e.dlqStats(otherAdmin)["webhooks"]; *s.Dead != 0 || *s.Depth != 0 {
		t.Fatalf("another tenant's admin sees stats %+v", s)
	}
	wantProblem(t, e.do("POST", "/admin/dlq/jobs/"+jobID+"/redrive", "", bearer(otherAdmin)...), http.StatusNotFound)
	var redriven struct{ Redriven int64 }
	r = e.do("POST", "/admin/dlq/queues/webhooks/redrive", "", bearer(otherAdmin)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &redriven)
	if redriven.Redriven != 0 {
		t.Fatalf("another tenant's admin re-drove %d jobs", redriven.Redriven)
	}
	wantProblem(t, e.do("POST", "/admin/dlq/queues/nope/redrive", "", bearer(admin)...), http.StatusNotFound)
	if n := len(e.deadJobs(admin, "")); n != 2 {
		t.Fatalf("%d dead jobs after another tenant's attempts, want 2", n)
	}

	// Fixed: re-drive one by id, the rest by queue. Each is processed once.
	svc.FailHubSpot(false)
	wantStatus(t, e.do("POST", "/admin/dlq/jobs/"+jobID+"/redrive", "", bearer(admin)...), http.StatusOK)
	r = e.do("POST", "/admin/dlq/queues/webhooks/redrive", "", bearer(admin)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &redriven)
	if redriven.Redriven != 1 {
		t.Fatalf("queue re-drive moved %d jobs, want 1", redriven.Redriven)
	}
	eventually(t, "the re-driven jobs to complete", func() bool {
		return jobStates(t, e, tenant, intake.KindHubSpotContact)["completed"] == 2
	})
	if st := jobStates(t, e, tenant, intake.KindHubSpotContact); len(st) != 1 {
		t.Fatalf("hubspot jobs by state %v", st)
	}
	wantProblem(t, e.do("POST", "/admin/dlq/jobs/"+jobID+"/redrive", "", bearer(admin)...), http.StatusConflict)
	if n, name, company := leadsByEmail(t, e, tenant, "omar@example.com"); n != 1 || name != "Omar Test" || company != "Jeddah Clinics" {
		t.Fatalf("Omar's lead: %d, %q, %q", n, name, company)
	}
	if n, name, company := leadsByEmail(t, e, tenant, "sara@example.com"); n != 1 || name != "Sara Test" || company != "Riyadh Foods" {
		t.Fatalf("lead: %d, %q, %q", n, name, company)
	}

	// The same delivery again: acknowledged, not enqueued. An update of
	// the contact changes the one lead.
	r = e.sendHubSpot(tenant, body, intake.DevHubSpotSecret)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "duplicate" {
		t.Fatalf("redelivery answered %s", r.body)
	}
	update := hubspotBody(3, intake.HubSpotContactPropertyChange, "sara@example.com", "Sara", "Dammam Foods")
	wantStatus(t, e.sendHubSpot(tenant, update, intake.DevHubSpotSecret), http.StatusOK)
	eventually(t, "the update", func() bool {
		_, _, company := leadsByEmail(t, e, tenant, "sara@example.com")
		return company == "Dammam Foods"
	})
	if n, _, _ := leadsByEmail(t, e, tenant, "sara@example.com"); n != 1 {
		t.Fatalf("%d leads for one contact", n)
	}
	if n, _, _ := leadsByEmail(t, e, other, "sara@example.com"); n != 0 {
		t.Fatal("the lead leaked to another tenant")
	}
}

func calendlyBody(event, inviteeURI, email string, start time.Time) string {
	ev := intake.CalendlyEvent{Event: event, CreatedAt: time.Now().UTC(), Payload: intake.CalendlyInvitee{
		URI: inviteeURI, Email: email, Name: "Layla Test", Status: "active",
		Event: "https://api.calendly.com/scheduled_events/EV1",
		ScheduledEvent: intake.CalendlyScheduledEvent{
			URI: "https://api.calendly.com/scheduled_events/EV1", Name: "Intro call",
			StartTime: &start, EndTime: func() *time.Time { t := start.Add(30 * time.Minute); return &t }(),
		},
	}}
	if event == intake.CalendlyInviteeCanceled {
		ev.Payload.Status = "canceled"
		ev.Payload.Cancellation = &intake.CalendlyCancellation{CanceledBy: "Layla Test", Reason: "moved to next week"}
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

func meetingStatus(t *testing.T, e *env, tenant, invitee string) (status, leadEmail string) {
	t.Helper()
	err := e.db.System.QueryRow(context.Background(), `SELECT m.status, l.email FROM dealix.meetings m
		JOIN dealix.leads l ON l.tenant_id = m.tenant_id AND l.id = m.lead_id
		WHERE m.tenant_id = $1 AND m.invitee_uri = $2`, tenant, invitee).Scan(&status, &leadEmail)
	if err != nil && !strings.Contains(err.Error(), "no rows") {
		t.Fatal(err)
	}
	return status, leadEmail
}

func TestCalendlyMeetingBookedThenCanceled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	invitee := "https://api.calendly.com/scheduled_events/EV1/invitees/INV1"
	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)

	// The contact came through HubSpot first: the meeting lands on that lead.
	wantStatus(t, e.sendHubSpot(tenant, hubspotBody(10, intake.HubSpotContactCreation, "layla@example.com", "Layla", "Dammam Retail"), intake.DevHubSpotSecret), http.StatusOK)
	eventually(t, "the HubSpot lead", func() bool { n, _, _ := leadsByEmail(t, e, tenant, "layla@example.com"); return n == 1 })

	created := calendlyBody(intake.CalendlyInviteeCreated, invitee, "Layla@Example.com", start)
	wantProblem(t, e.sendCalendly(tenant, created, "wrong-key"), http.StatusUnauthorized)
	wantStatus(t, e.sendCalendly(tenant, created, intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "the meeting to be booked", func() bool { s, _ := meetingStatus(t, e, tenant, invitee); return s == "booked" })

	canceled := calendlyBody(intake.CalendlyInviteeCanceled, invitee, "layla@example.com", start)
	wantStatus(t, e.sendCalendly(tenant, canceled, intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "the meeting to be canceled", func() bool { s, _ := meetingStatus(t, e, tenant, invitee); return s == "canceled" })

	// A late copy of the booking, signed anew as Calendly does on a retry
	// (another second, so another delivery id): the same event, not
	// enqueued again.
	var ans ingestAnswer
	r := e.sendCalendlyAt(tenant, created, intake.DevCalendlySecret, time.Now().Add(-10*time.Second))
	wantStatus(t, r, http.StatusOK)
	r.json(t, &ans)
	if ans.Status != "duplicate" {
		t.Fatalf("late booking answered %s", r.body)
	}
	// Out of order: another invitee's cancellation arrives before the
	// booking. The cancellation is final.
	third := "https://api.calendly.com/scheduled_events/EV3/invitees/INV3"
	wantStatus(t, e.sendCalendly(tenant, calendlyBody(intake.CalendlyInviteeCanceled, third, "layla@example.com", start), intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "the early cancellation", func() bool { s, _ := meetingStatus(t, e, tenant, third); return s == "canceled" })
	wantStatus(t, e.sendCalendly(tenant, calendlyBody(intake.CalendlyInviteeCreated, third, "layla@example.com", start), intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "every calendly job to complete", func() bool {
		return jobStates(t, e, tenant, intake.KindCalendlyInvitee)["completed"] == 4
	})
	if s, _ := meetingStatus(t, e, tenant, third); s != "canceled" {
		t.Fatalf("a booking arriving after its cancellation left the meeting %q", s)
	}
	status, email := meetingStatus(t, e, tenant, invitee)
	if status != "canceled" || email != "layla@example.com" {
		t.Fatalf("meeting %q on lead %q", status, email)
	}
	if n, _, _ := leadsByEmail(t, e, tenant, "layla@example.com"); n != 1 {
		t.Fatalf("%d leads for one invitee", n)
	}
	var meetings int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM dealix.meetings WHERE tenant_id = $1`, tenant).Scan(&meetings); err != nil {
		t.Fatal(err)
	}
	if meetings != 2 {
		t.Fatalf("%d meetings, want 2", meetings)
	}

	// An invitee nobody knew becomes a lead of source calendly.
	other := "https://api.calendly.com/scheduled_events/EV2/invitees/INV2"
	wantStatus(t, e.sendCalendly(tenant, calendlyBody(intake.CalendlyInviteeCreated, other, "new@example.com", start), intake.DevCalendlySecret), http.StatusOK)
	eventually(t, "the new invitee's meeting", func() bool { s, _ := meetingStatus(t, e, tenant, other); return s == "booked" })
	var source string
	if err := e.db.System.QueryRow(context.Background(), `SELECT source FROM dealix.leads WHERE tenant_id = $1 AND email = 'new@example.com'`, tenant).Scan(&source); err != nil || source != "calendly" {
		t.Fatalf("new invitee's lead: %q, %v", source, err)
	}
}

// TestConcurrentDeliveriesEnqueueOnce sends one signed event from many
// connections at once: the claim and the enqueue share a transaction, so
// exactly one request enqueues and the others are told it is a duplicate
// (or, while the first holds it, to retry).
func TestConcurrentDeliveriesEnqueueOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	ev := billing.Event{ID: uuid.NewString(), Type: billing.EventPaymentFailed, CreatedAt: time.Now().UTC(),
		Data: billing.Payment{ID: uuid.NewString(), Status: "failed", Amount: 100, Currency: "SAR", InvoiceID: "unknown",
			Metadata: map[string]string{billing.MetaTenant: tenant}}}
	body, err := webhooksig.SignMoyasar(billing.DevWebhookToken, billing.EventBody(ev))
	if err != nil {
		t.Fatal(err)
	}
	const senders = 8
	answers := make(chan response, senders)
	start := make(chan struct{})
	for range senders {
		go func() {
			<-start
			req, _ := http.NewRequest("POST", e.url+"/webhooks/moyasar", strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- response{}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- response{resp, b}
		}()
	}
	close(start)
	accepted := 0
	for range senders {
		r := <-answers
		if r.Response == nil {
			t.Fatal("a delivery failed to send")
		}
		if r.StatusCode == http.StatusConflict {
			continue
		}
		wantStatus(t, r, http.StatusOK)
		var ans ingestAnswer
		r.json(t, &ans)
		if ans.Status == "accepted" {
			accepted++
		}
	}
	if accepted != 1 {
		t.Fatalf("%d deliveries accepted, want 1", accepted)
	}
	var jobs int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1`, tenant).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 1 {
		t.Fatalf("%d jobs, want 1", jobs)
	}
	// The event names no invoice of the tenant: dead at once, with why.
	eventually(t, "the job to be dead", func() bool { return jobStates(t, e, tenant, billing.KindMoyasarEvent)["dead"] == 1 })
	dead := e.deadJobs(e.token(tenant, "admin"), "")
	if len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].Errors[0].Error, "no invoice") {
		t.Fatalf("dead jobs %+v", dead)
	}
	if strings.Contains(string(dead[0].Payload), billing.DevWebhookToken) {
		t.Fatal("the stored payload keeps the secret token")
	}
}
