package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func check(name string, required bool, status string) Check {
	return Check{Name: name, Required: required, Run: func(context.Context) Result { return Result{Status: status} }}
}

func TestDeepStatus(t *testing.T) {
	cases := []struct {
		name   string
		checks []Check
		code   int
		status string
	}{
		{"all ok", []Check{check("db", true, StatusOK), check("pool", false, StatusOK)}, 200, StatusOK},
		{"optional down", []Check{check("db", true, StatusOK), check("cache", false, StatusDown)}, 200, StatusDegraded},
		{"required degraded", []Check{check("db", true, StatusDegraded)}, 200, StatusDegraded},
		{"required down", []Check{check("db", true, StatusDown), check("pool", false, StatusOK)}, 503, StatusDown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			(&Deep{Checks: c.checks}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health/deep", nil))
			var rep Report
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			if rec.Code != c.code || rep.Status != c.status || len(rep.Checks) != len(c.checks) {
				t.Fatalf("%d %+v, want %d %s", rec.Code, rep, c.code, c.status)
			}
			for _, ch := range c.checks {
				if rep.Checks[ch.Name].Required != ch.Required {
					t.Fatalf("check %s: required %v", ch.Name, rep.Checks[ch.Name].Required)
				}
			}
		})
	}
}

func TestDeepTimesOutASlowCheck(t *testing.T) {
	slow := Check{Name: "slow", Required: true, Run: func(ctx context.Context) Result {
		<-ctx.Done() // returns only because the check's deadline passes
		return Result{Status: StatusDown, Detail: "timed out"}
	}}
	rep := (&Deep{Checks: []Check{slow}, Timeout: 1}).Check(context.Background())
	if rep.Status != StatusDown || rep.Checks["slow"].Detail != "timed out" {
		t.Fatalf("%+v", rep)
	}
}
