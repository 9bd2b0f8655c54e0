package launchgates_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
)

const releaseFile = "../../../gates/sets/release.json"

// commandGates are the gates release.json checks by running the Go probe
// (go run): a file cannot express them.
var commandGates = map[string]bool{"RR3": true, "RR4": true, "RR5": true, "RR12": true}

func TestReleaseFileIsTheReleaseSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	vars := map[string]string{"BASE_URL": e.cfg.BaseURL, "ADMIN_TOKEN": e.cfg.AdminToken, "USER_TOKEN": e.cfg.UserToken,
		"DATABASE_URL": e.cfg.DatabaseURL, "ROOT": e.cfg.Root}
	file, err := gates.Load(releaseFile, vars)
	if err != nil {
		t.Fatal(err)
	}
	set := launchgates.ReleaseSet(e.cfg)
	if file.Name != set.Name || file.Verdict != set.Verdict || file.Rule != set.Rule || len(file.Gates) != len(set.Gates) {
		t.Fatalf("release.json %q %q %+v %d gates; ReleaseSet %q %q %+v %d gates",
			file.Name, file.Verdict, file.Rule, len(file.Gates), set.Name, set.Verdict, set.Rule, len(set.Gates))
	}
	for i, g := range set.Gates {
		f := file.Gates[i]
		if f.ID != g.ID || f.Title != g.Title || f.Area != g.Area || f.Priority != g.Priority {
			t.Errorf("gate %d: file %s %q %s %s, Go %s %q %s %s", i, f.ID, f.Title, f.Area, f.Priority, g.ID, g.Title, g.Area, g.Priority)
		}
		_, isCommand := f.Check.(gates.CommandCheck)
		if isCommand != commandGates[g.ID] {
			t.Errorf("%s: command check %v", g.ID, isCommand)
		}
	}

	goReport, err := set.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	_ = goReport.WriteText(&text)
	t.Logf("release report (Go):\n%s", text.String())

	// The file's probes find what the Go probes find. One command gate is
	// run too (go run builds the probe once): the rest share its code.
	file.Gates = slicesDelete(file.Gates, func(g gates.Gate) bool { return commandGates[g.ID] && g.ID != "RR3" })
	for i := range file.Gates {
		if file.Gates[i].ID == "RR3" {
			file.Gates[i].Timeout = 5 * time.Minute // room for a cold build on a busy machine
		}
	}
	fileReport, err := file.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	text.Reset()
	_ = fileReport.WriteText(&text)
	t.Logf("release report (release.json):\n%s", text.String())
	goStatus := map[string]gates.Status{}
	for _, gr := range goReport.Results {
		goStatus[gr.Gate.ID] = gr.Result.Status
	}
	for _, gr := range fileReport.Results {
		if gr.Result.Status != goStatus[gr.Gate.ID] {
			t.Errorf("%s: release.json %s (%s%s), ReleaseSet %s", gr.Gate.ID, gr.Result.Status, gr.Result.Evidence, gr.Result.Reason, goStatus[gr.Gate.ID])
		}
	}

	// What part 1 of the server proves closes in both.
	for _, id := range []string{"RR1", "RR2", "RR3", "RR9", "RR10", "RR11"} {
		if goStatus[id] != gates.Closed {
			t.Errorf("%s: %s, want closed", id, goStatus[id])
		}
	}
	for _, gr := range goReport.Results {
		if gr.Gate.ID == "RR11" && !strings.Contains(gr.Result.Evidence, "rlspolicy.Audit as the serving role: no findings") {
			t.Errorf("RR11 evidence %q", gr.Result.Evidence)
		}
	}
	if goReport.Pass != (goReport.Closed() == len(goReport.Results)) {
		t.Fatalf("release matrix passes only with every gate closed: pass %v, %d/%d", goReport.Pass, goReport.Closed(), len(goReport.Results))
	}
}

func TestRLSAuditFindsAnUnprotectedTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.db.Owner.Exec(ctx, `CREATE TABLE dealix.gate_leak (tenant_id uuid NOT NULL, secret text)`); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []launchgates.Config{
		e.cfg, // rlspolicy.Audit as the serving role
		{BaseURL: e.cfg.BaseURL, DatabaseURL: e.cfg.DatabaseURL}, // the table audit
	} {
		set := launchgates.ReleaseSet(cfg)
		set.Gates = slicesDelete(set.Gates, func(g gates.Gate) bool { return g.ID != "RR11" })
		report, err := set.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := report.Results[0].Result
		if r.Status != gates.Open || !strings.Contains(r.Reason, "gate_leak") {
			t.Errorf("RLS audit with an unprotected tenant table: %+v", r)
		}
	}
}

func slicesDelete(gs []gates.Gate, del func(gates.Gate) bool) []gates.Gate {
	var out []gates.Gate
	for _, g := range gs {
		if !del(g) {
			out = append(out, g)
		}
	}
	return out
}
