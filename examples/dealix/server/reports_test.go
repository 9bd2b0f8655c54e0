package server_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/reports"
)

// weeklyPack is the part of the weekly pack the test reads.
type weeklyPack struct {
	Week     string `json:"week"`
	NewLeads []struct {
		Name string `json:"name"`
	} `json:"new_leads"`
	MeetingsBooked []struct {
		Email string `json:"email"`
	} `json:"meetings_booked"`
	DealsClosed []struct {
		ID       string `json:"id"`
		Outcome  string `json:"outcome"`
		Amount   int64  `json:"amount"`
		Evidence *struct {
			CorrelationID string `json:"correlation_id"`
		} `json:"evidence"`
	} `json:"deals_closed"`
	OutboundSent struct {
		Messages, Campaigns int64
	} `json:"outbound_sent"`
	ApprovalsPending []struct {
		Kind string `json:"kind"`
	} `json:"approvals_pending"`
	ModelSpend struct {
		Calls   int64  `json:"calls"`
		CostUSD string `json:"cost_usd"`
	} `json:"model_spend"`
}

// TestWeeklyPackGathersTheTenantsWeek fills one tenant's week through the
// API — leads (scored, so the ledger has calls), a closed deal, a sent
// campaign, a held one, a booked meeting — and reads it back as JSON and
// as CSV; another tenant's week holds none of it.
func TestWeeklyPackGathersTheTenantsWeek(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantA, tenantB := newTenant(), newTenant()
	tokenA, tokenB := e.token(tenantA), e.token(tenantB)
	ctx := context.Background()

	lead := e.createLead(tokenA, `{"name":"Noura","email":"noura@example.com"}`)
	e.createLead(tokenA, `{"name":"Faisal"}`)
	e.createLead(tokenB, `{"name":"Other tenant"}`)
	d := e.createDeal(tokenA, `{"title":"Clinic rollout","amount":125050,"currency":"SAR"}`)
	wantStatus(t, e.do("POST", "/api/v1/deals/"+d.ID+"/close", `{"outcome":"won"}`,
		with(bearer(tokenA), "Idempotency-Key", "weekly-close", "X-Correlation-ID", "weekly-corr")...), http.StatusOK)
	e.waitRun(tokenA, d.ID)
	sent, _ := e.createCampaign(bearer(tokenA), campaignBody(recipients(3, "weekly.example"), 0.1, false), http.StatusCreated)
	e.createCampaign(bearer(tokenA), campaignBody(recipients(51, "held.example"), 0.1, false), http.StatusAccepted)
	if _, err := e.db.System.Exec(ctx, `INSERT INTO dealix.meetings (tenant_id, lead_id, invitee_uri, email, status, booked_at)
		VALUES ($1, $2, 'https://calendly.example/invitees/1', 'noura@example.com', 'booked', now())`, tenantA, lead.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the campaign is sent and both leads are scored", func() bool {
		return e.campaign(bearer(tokenA), sent.Campaign.ID).Status == "sent" &&
			e.count(t, "SELECT count(*) FROM dealix.model_calls WHERE tenant_id = $1", tenantA) == 2
	})

	var pack weeklyPack
	r := e.do("GET", "/api/v1/reports/weekly", "", bearer(tokenA)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &pack)
	if pack.Week != reports.WeekOf(time.Now()).String() || len(pack.NewLeads) != 2 || len(pack.MeetingsBooked) != 1 ||
		len(pack.DealsClosed) != 1 || len(pack.ApprovalsPending) != 1 {
		t.Fatalf("pack %s", r.body)
	}
	closed := pack.DealsClosed[0]
	if closed.ID != d.ID || closed.Outcome != "won" || closed.Amount != 125050 || closed.Evidence == nil || closed.Evidence.CorrelationID != "weekly-corr" {
		t.Fatalf("closed deal %s", r.body)
	}
	if pack.OutboundSent.Messages != 3 || pack.OutboundSent.Campaigns != 1 {
		t.Fatalf("outbound %+v", pack.OutboundSent)
	}
	var ledgerCost string
	if err := e.db.System.QueryRow(ctx, "SELECT sum(cost_usd)::text FROM dealix.model_calls WHERE tenant_id = $1", tenantA).Scan(&ledgerCost); err != nil {
		t.Fatal(err)
	}
	if pack.ModelSpend.Calls != 2 || pack.ModelSpend.CostUSD != ledgerCost {
		t.Fatalf("spend %+v, ledger %s", pack.ModelSpend, ledgerCost)
	}

	// The same week as CSV.
	r = e.do("GET", "/api/v1/reports/weekly?week="+pack.Week, "", with(bearer(tokenA), "Accept", "text/csv")...)
	wantStatus(t, r, http.StatusOK)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("content type %q", r.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]int{}
	for _, row := range rows[1:] {
		sections[row[0]]++
	}
	if sections["new_lead"] != 2 || sections["deal_closed"] != 1 || sections["meeting_booked"] != 1 || sections["approval_pending"] != 1 || sections["model_spend_total"] != 1 {
		t.Fatalf("CSV sections %v:\n%s", sections, r.body)
	}

	// Another tenant sees only its own lead; a week long past is empty.
	var other weeklyPack
	r = e.do("GET", "/api/v1/reports/weekly", "", bearer(tokenB)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &other)
	if len(other.NewLeads) != 1 || other.NewLeads[0].Name != "Other tenant" || len(other.DealsClosed) != 0 || other.OutboundSent.Messages != 0 || len(other.ApprovalsPending) != 0 {
		t.Fatalf("tenant B's pack %s", r.body)
	}
	var past weeklyPack
	r = e.do("GET", "/api/v1/reports/weekly?week=2020-W53", "", bearer(tokenA)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &past)
	if len(past.NewLeads) != 0 || len(past.DealsClosed) != 0 || past.ModelSpend.CostUSD != "0" {
		t.Fatalf("a past week %s", r.body)
	}

	for _, bad := range []string{"2026-W54", "2021-W53", "2026-49", "last-week", "2026-W00"} {
		wantProblem(t, e.do("GET", "/api/v1/reports/weekly?week="+bad, "", bearer(tokenA)...), http.StatusBadRequest)
	}
	wantStatus(t, e.do("GET", "/api/v1/reports/weekly", ""), http.StatusUnauthorized)
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
