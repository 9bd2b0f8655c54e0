package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/console"
	"github.com/dealix/platform/examples/dealix/intake"
)

// hubspotJob is the tenant's one hubspot.contact job for email, as stored.
type hubspotJob struct {
	state               string
	attempt, maxAttempt int
	errors              int
}

func hubspotJobFor(t *testing.T, e *env, tenant, email string) (hubspotJob, int) {
	t.Helper()
	var j hubspotJob
	var n int
	err := e.db.System.QueryRow(context.Background(), `SELECT count(*) OVER (), state, attempt, max_attempts, jsonb_array_length(errors)
		FROM platform.dlq_jobs WHERE tenant_id = $1 AND kind = $2 AND payload->'properties'->>'email' = $3 LIMIT 1`,
		tenant, intake.KindHubSpotContact, email).Scan(&n, &j.state, &j.attempt, &j.maxAttempt, &j.errors)
	if err != nil && !strings.Contains(err.Error(), "no rows") {
		t.Fatal(err)
	}
	return j, n
}

// TestHubSpotFaultForOneContactOnly fails one contact's deliveries at a
// single attempt while another contact's, sent at the same time, are
// processed at their first attempt with the queue's attempts.
func TestHubSpotFaultForOneContactOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.srv.Intake()
	tenant := newTenant()
	const probe, real = "Gate-Probe-1@example.invalid", "nadia@example.com"
	svc.FailHubSpotFor(probe, true)
	svc.HubSpotAttemptsFor(probe, 1)
	if svc.HubSpotFaults() != 1 {
		t.Fatalf("%d contacts with a fault, want 1", svc.HubSpotFaults())
	}

	wantStatus(t, e.sendHubSpot(tenant, hubspotBody(1, intake.HubSpotContactCreation, "gate-probe-1@example.invalid", "Probe", "Dealix"), intake.DevHubSpotSecret), http.StatusOK)
	wantStatus(t, e.sendHubSpot(tenant, hubspotBody(2, intake.HubSpotContactCreation, real, "Nadia", "Abha Tech"), intake.DevHubSpotSecret), http.StatusOK)
	eventually(t, "the probe's job to be dead", func() bool {
		j, _ := hubspotJobFor(t, e, tenant, "gate-probe-1@example.invalid")
		return j.state == "dead"
	})
	eventually(t, "the other contact's job to complete", func() bool {
		j, _ := hubspotJobFor(t, e, tenant, real)
		return j.state == "completed"
	})
	if j, _ := hubspotJobFor(t, e, tenant, "gate-probe-1@example.invalid"); j.attempt != 1 || j.maxAttempt != 1 || j.errors != 1 {
		t.Fatalf("probe job %+v: want dead at its one attempt", j)
	}
	if j, n := hubspotJobFor(t, e, tenant, real); n != 1 || j.attempt != 1 || j.maxAttempt != 10 || j.errors != 0 {
		t.Fatalf("other contact's job %+v (%d jobs): want completed at its first attempt of 10", j, n)
	}
	if n, name, _ := leadsByEmail(t, e, tenant, real); n != 1 || name != "Nadia Test" {
		t.Fatalf("other contact's lead: %d %q", n, name)
	}
	if n, _, _ := leadsByEmail(t, e, tenant, "gate-probe-1@example.invalid"); n != 0 {
		t.Fatal("the failing contact's lead exists")
	}

	// Lifted: the fault and the attempts limit go together; a re-drive
	// completes the probe's job.
	svc.FailHubSpotFor(probe, false)
	if svc.HubSpotFaults() != 0 {
		t.Fatalf("%d contacts with a fault after it was lifted", svc.HubSpotFaults())
	}
	admin := e.token(tenant, "admin")
	r := e.do("POST", "/admin/dlq/queues/webhooks/redrive", "", bearer(admin)...)
	wantStatus(t, r, http.StatusOK)
	eventually(t, "the re-driven probe to complete", func() bool {
		n, _, _ := leadsByEmail(t, e, tenant, "gate-probe-1@example.invalid")
		return n == 1
	})
}

// TestAdminGatesInjectsTheWebhookFault runs the launch set on a real
// server: T5 closes on the fault injection (the probe's delivery dead,
// re-driven, its lead created and then deleted), while a real HubSpot
// delivery sent during the probe is processed once, untouched.
func TestAdminGatesInjectsTheWebhookFault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	svc := e.srv.Intake()
	tenant := newTenant()
	admin := e.token(tenant, "admin", "leads")

	type answer struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.url+"/admin/gates", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- answer{resp.StatusCode, b, err}
	}()

	// While the probe's fault is set, a real contact of the same tenant
	// arrives.
	const real = "khalid@example.com"
	var got *answer
	for got == nil && svc.HubSpotFaults() == 0 {
		select {
		case a := <-done:
			got = &a
		case <-time.After(time.Millisecond):
		}
	}
	if got != nil {
		t.Fatalf("the gates run ended before its webhook fault was set: %d %s %v", got.status, got.body, got.err)
	}
	wantStatus(t, e.sendHubSpot(tenant, hubspotBody(77, intake.HubSpotContactCreation, real, "Khalid", "Tabuk Trading"), intake.DevHubSpotSecret), http.StatusOK)

	a := <-done
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("GET /admin/gates: %d %s %v", a.status, a.body, a.err)
	}
	var report struct {
		Results []struct {
			Gate struct {
				ID string `json:"id"`
			} `json:"gate"`
			Result struct {
				Status   string `json:"status"`
				Evidence string `json:"evidence"`
				Reason   string `json:"reason"`
			} `json:"result"`
		} `json:"results"`
	}
	if err := json.Unmarshal(a.body, &report); err != nil {
		t.Fatal(err)
	}
	found, evidence := false, ""
	for _, gr := range report.Results {
		if gr.Gate.ID != "T5" {
			continue
		}
		found = true
		res := gr.Result
		if res.Status != "closed" {
			t.Fatalf("T5 %s: %s (%s)", res.Status, res.Reason, res.Evidence)
		}
		evidence = res.Evidence
		for _, want := range []string{"fault injection: failing delivery (HubSpot contact gate-probe-", "webhooks job ", ") dead after", "re-drove 1", "dead letters back to 0"} {
			if !strings.Contains(res.Evidence, want) {
				t.Errorf("T5 evidence lacks %q: %s", want, res.Evidence)
			}
		}
	}
	if !found {
		t.Fatal("no T5 in the report")
	}
	if n := svc.HubSpotFaults(); n != 0 {
		t.Fatalf("%d contacts still carry a fault after the run", n)
	}

	// The probe's job went dead at its one attempt, was re-driven and
	// completed; its lead is gone.
	var probeEmail string
	var probeID int64
	var probe hubspotJob
	err := e.db.System.QueryRow(context.Background(), `SELECT id, payload->'properties'->>'email', state, attempt, max_attempts, jsonb_array_length(errors)
		FROM platform.dlq_jobs WHERE tenant_id = $1 AND kind = $2 AND payload->'properties'->>'email' LIKE 'gate-probe-%@example.invalid'`,
		tenant, intake.KindHubSpotContact).Scan(&probeID, &probeEmail, &probe.state, &probe.attempt, &probe.maxAttempt, &probe.errors)
	if err != nil {
		t.Fatalf("the probe's job: %v", err)
	}
	if probe.state != "completed" || probe.maxAttempt != 1 || probe.errors != 1 {
		t.Fatalf("probe job %+v: want completed after one failed attempt", probe)
	}
	if name := fmt.Sprintf("HubSpot contact %s, webhooks job %d", probeEmail, probeID); !strings.Contains(evidence, name) {
		t.Fatalf("T5 evidence does not name the dead letter %q: %s", name, evidence)
	}
	if n, _, _ := leadsByEmail(t, e, tenant, probeEmail); n != 0 {
		t.Fatalf("the probe left %d leads behind", n)
	}

	// The real delivery: processed once, at its first attempt, with the
	// queue's attempts.
	eventually(t, "the real contact's job to complete", func() bool {
		j, _ := hubspotJobFor(t, e, tenant, real)
		return j.state == "completed"
	})
	if j, n := hubspotJobFor(t, e, tenant, real); n != 1 || j.attempt != 1 || j.maxAttempt != 10 || j.errors != 0 {
		t.Fatalf("real job %+v (%d jobs): want completed at its first attempt of 10", j, n)
	}
	if n, name, company := leadsByEmail(t, e, tenant, real); n != 1 || name != "Khalid Test" || company != "Tabuk Trading" {
		t.Fatalf("real lead: %d %q %q", n, name, company)
	}
}

// TestConsoleGatesRunInjectsTheWebhookFault runs the launch set from the
// console's gates page: T5 closes there too, on the same fault injection,
// and the probe leaves no lead behind.
func TestConsoleGatesRunInjectsTheWebhookFault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	login := e.consoleDo("POST", console.Prefix+"login", url.Values{"credential": {e.token(tenant, "admin")}})
	if login.StatusCode != http.StatusSeeOther || len(login.Cookies()) != 1 {
		t.Fatalf("sign in: %d %v", login.StatusCode, login.Cookies())
	}
	cookie := login.Cookies()[0]
	r := e.consoleDo("POST", console.Prefix+"gates", url.Values{}, "Cookie", cookie.Name+"="+cookie.Value)
	wantStatus(t, r, http.StatusOK)
	page := string(r.body)
	i := strings.Index(page, `<tr class="gate" data-id="T5">`)
	if i < 0 {
		t.Fatalf("no T5 row:\n%s", page)
	}
	row, _, _ := strings.Cut(page[i:], "</tr>")
	if !strings.Contains(row, `<span class="tag closed">closed</span>`) || !strings.Contains(row, "re-drove 1") {
		t.Fatalf("T5 row: %s", row)
	}
	var probeLeads int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM dealix.leads
		WHERE tenant_id = $1 AND email LIKE 'gate-probe-%@example.invalid'`, tenant).Scan(&probeLeads); err != nil {
		t.Fatal(err)
	}
	if probeLeads != 0 {
		t.Fatalf("the console's run left %d probe leads", probeLeads)
	}
	if n := e.srv.Intake().HubSpotFaults(); n != 0 {
		t.Fatalf("%d contacts still carry a fault", n)
	}
}
