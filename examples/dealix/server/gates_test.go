package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAdminGatesServesTheLaunchReport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()

	wantProblem(t, e.do("GET", "/admin/gates", ""), http.StatusUnauthorized)
	wantProblem(t, e.do("GET", "/admin/gates", "", bearer(e.token(tenant, "leads"))...), http.StatusForbidden)

	// The run probes this server's /health/deep, whose checks time out at
	// 2 s: let the new server's pools open their first connections first,
	// which on a loaded machine (SCRAM, -race) can take longer than that.
	deepOK := func() bool {
		d := e.do("GET", "/health/deep", "")
		var doc struct {
			Status string `json:"status"`
		}
		return d.StatusCode == http.StatusOK && json.Unmarshal(d.body, &doc) == nil && doc.Status == "ok"
	}
	for deadline := time.Now().Add(time.Minute); !deepOK() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}

	admin := bearer(e.token(tenant, "admin", "leads"))
	r := e.do("GET", "/admin/gates", "", admin...)
	wantStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var report struct {
		Name    string `json:"name"`
		Pass    bool   `json:"pass"`
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
	r.json(t, &report)
	status, reason := map[string]string{}, map[string]string{}
	for _, gr := range report.Results {
		status[gr.Gate.ID], reason[gr.Gate.ID] = gr.Result.Status, gr.Result.Reason
		if gr.Result.Status == "closed" && gr.Result.Evidence == "" {
			t.Errorf("%s closed without evidence", gr.Gate.ID)
		}
	}
	if report.Name != "Dealix launch gates" || len(report.Results) != 34 || report.Pass {
		t.Fatalf("report %q with %d gates, pass %v", report.Name, len(report.Results), report.Pass)
	}
	// Checked live against this very server: deep health, the public price
	// list, API keys (the run's own non-admin key among them), CORS. (O1
	// needs the W3C propagator that Run's telemetry.Init installs, which
	// this test binary does not.)
	for _, id := range []string{"T1", "G1", "S2", "S6"} {
		if status[id] != "closed" {
			t.Errorf("%s: %s (%s), want closed", id, status[id], reason[id])
		}
	}
	if status["S7"] != "blocked" || status["G5"] != "blocked" {
		t.Errorf("S7 %s, G5 %s: want blocked", status["S7"], status["G5"])
	}

	// The run's probe key is revoked afterwards: the tenant keeps no
	// active key it did not ask for.
	var keys struct {
		Items []struct {
			Name      string  `json:"name"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"items"`
	}
	kr := e.do("GET", "/api/v1/api-keys", "", admin...)
	wantStatus(t, kr, http.StatusOK)
	if err := json.Unmarshal(kr.body, &keys); err != nil {
		t.Fatal(err)
	}
	probes := 0
	for _, k := range keys.Items {
		if k.Name == "launch gate probe" {
			probes++
			if k.RevokedAt == nil {
				t.Fatal("the probe key is still active after the run")
			}
		}
	}
	if probes != 1 {
		t.Fatalf("%d probe keys, want 1 (%s)", probes, kr.body)
	}

	// Within a minute the report is served again, not re-run; Markdown on
	// request.
	md := e.do("GET", "/admin/gates", "", with(admin, "Accept", "text/markdown")...)
	wantStatus(t, md, http.StatusOK)
	if md.Header.Get("Last-Modified") != r.Header.Get("Last-Modified") {
		t.Fatalf("Last-Modified %q then %q: the report was run again", r.Header.Get("Last-Modified"), md.Header.Get("Last-Modified"))
	}
	if !strings.HasPrefix(md.Header.Get("Content-Type"), "text/markdown") {
		t.Fatalf("Content-Type %q", md.Header.Get("Content-Type"))
	}
	for _, want := range []string{"# Dealix launch gates", "## Legend", "| T1 | /health/deep green | P0 | ✅ |", "LAUNCH READY: NO"} {
		if !strings.Contains(string(md.body), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.body)
		}
	}

	// Another tenant's admin gets a report of its own run.
	other := e.do("GET", "/admin/gates", "", bearer(e.token(newTenant(), "admin"))...)
	wantStatus(t, other, http.StatusOK)
	if ids := strings.Count(string(other.body), `"id"`); ids < 34 {
		t.Fatalf("other tenant's report: %d ids", ids)
	}
}
