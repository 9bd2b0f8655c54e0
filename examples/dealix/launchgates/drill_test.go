package launchgates_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
)

// createLeads writes n leads through the server, so the drill has rows of
// its own to carry.
func (e *env) createLeads(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		req, err := http.NewRequest(http.MethodPost, e.cfg.BaseURL+"/api/v1/leads",
			strings.NewReader(`{"name":"Drill lead `+string(rune('A'+i))+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.cfg.AdminToken)
		req.Header.Set("Idempotency-Key", uuid.NewString())
		resp, err := e.cfg.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create lead: %d", resp.StatusCode)
		}
	}
}

func countRows(t *testing.T, ctx context.Context, url, table string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRestoreDrillRestoresEveryRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createLeads(t, 5)
	ctx := context.Background()
	source := countRows(t, ctx, e.cfg.DatabaseURL, "dealix.leads")
	if source < 5 {
		t.Fatalf("%d leads in the source", source)
	}

	// Seen from outside the drill: the restored database holds the same
	// leads, and the source is untouched.
	var restoredLeads int
	var restoredURL string
	drill := launchgates.RestoreDrill{SourceURL: e.cfg.DatabaseURL, AfterRestore: func(ctx context.Context, url string) error {
		restoredURL = url
		restoredLeads = countRows(t, ctx, url, "dealix.leads")
		return nil
	}}
	r := drill.Run(ctx)
	if r.Status != gates.Closed || !strings.Contains(r.Evidence, "every row count equal") {
		t.Fatalf("drill: %+v", r)
	}
	if restoredLeads != source {
		t.Fatalf("the restore has %d leads, the source %d", restoredLeads, source)
	}
	if restoredURL == "" || strings.Contains(restoredURL, e.db.Name) {
		t.Fatalf("restored into %q, want a fresh database beside %s", restoredURL, e.db.Name)
	}
	// The fresh database is gone after the drill.
	var exists bool
	name := restoredURL[strings.LastIndex(restoredURL, "/")+1:]
	if err := e.db.Admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil || exists {
		t.Fatalf("restore database %s still exists (%v)", name, err)
	}
}

func TestRestoreDrillFailsOnAMissingTableOrRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createLeads(t, 2)
	ctx := context.Background()
	for _, c := range []struct {
		name, sql, want string
	}{
		{"missing table", "DROP TABLE dealix.leads CASCADE", "dealix.leads missing"},
		{"missing row", "DELETE FROM dealix.leads WHERE ctid = (SELECT min(ctid) FROM dealix.leads)", "dealix.leads has"},
	} {
		drill := launchgates.RestoreDrill{SourceURL: e.cfg.DatabaseURL, AfterRestore: func(ctx context.Context, url string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "SET row_security = off; "+c.sql)
			return err
		}}
		r := drill.Run(ctx)
		if r.Status != gates.Open || !strings.Contains(r.Reason, c.want) {
			t.Errorf("%s: %+v, want open naming %q", c.name, r, c.want)
		}
	}
}

func TestRestoreDrillRefusesWhatItCannotRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, d := range []launchgates.RestoreDrill{
		{},
		{SourceURL: "host=127.0.0.1 dbname=x"},
		{SourceURL: "postgres://postgres@127.0.0.1:5432/postgres", PGBin: "/nonexistent"},
	} {
		if r := d.Run(ctx); r.Status != gates.Open || r.Reason == "" {
			t.Errorf("%+v: %+v, want open with the reason", d, r)
		}
	}
}
