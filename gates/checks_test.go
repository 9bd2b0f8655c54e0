package gates_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/internal/pgtest"
)

// runCheck runs c as the only gate of a set, under timeout.
func runCheck(t *testing.T, c gates.Check, timeout time.Duration) gates.Result {
	t.Helper()
	set := &gates.Set{Name: "one", Gates: []gates.Gate{{ID: "X", Title: "x", Check: c}}, Timeout: timeout}
	report, err := set.Run(context.Background())
	require.NoError(t, err)
	return report.Results[0].Result
}

func TestFileCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	doc := filepath.Join(dir, "RUNBOOK.md")
	require.NoError(t, os.WriteFile(doc, []byte("# Runbook\n\n## Deploy\nrun it\n### Rollback\n"), 0o644))
	empty := filepath.Join(dir, "empty.md")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "none"), 0o755))

	for _, tc := range []struct {
		name  string
		check gates.FileCheck
		want  gates.Status
	}{
		{"exists", gates.FileCheck{Path: doc}, gates.Closed},
		{"missing", gates.FileCheck{Path: filepath.Join(dir, "nope")}, gates.Open},
		{"headings present", gates.FileCheck{Path: doc, Headings: []string{"Deploy", "Rollback"}}, gates.Closed},
		{"heading missing", gates.FileCheck{Path: doc, Headings: []string{"Deploy", "Restore"}}, gates.Open},
		{"contains", gates.FileCheck{Path: doc, Contains: []string{"run it"}}, gates.Closed},
		{"does not contain", gates.FileCheck{Path: doc, Contains: []string{"// Output:"}}, gates.Open},
		{"empty file allowed", gates.FileCheck{Path: empty}, gates.Closed},
		{"empty file refused", gates.FileCheck{Path: empty, NonEmpty: true}, gates.Open},
		{"empty directory refused", gates.FileCheck{Path: filepath.Join(dir, "none"), NonEmpty: true}, gates.Open},
		{"directory with entries", gates.FileCheck{Path: dir, NonEmpty: true}, gates.Closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, tc.check, time.Second)
			require.Equal(t, tc.want, got.Status, "%+v", got)
		})
	}
}

func TestGoPackageCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	write("doc.go", "// Package demo demonstrates.\npackage demo\n")
	write("demo.go", "package demo\n\ntype Store struct{}\n\nfunc (s *Store) Claim() {}\n\nfunc New() *Store { return nil }\n\nvar ErrGone error\n\nfunc hidden() {}\n")
	write("demo_test.go", "package demo\n\nfunc TestOnly() {}\n")

	require.Equal(t, gates.Closed, runCheck(t, gates.GoPackageCheck{Dir: dir, Symbols: []string{"New", "Store", "Store.Claim", "ErrGone"}}, time.Second).Status)
	missing := runCheck(t, gates.GoPackageCheck{Dir: dir, Symbols: []string{"New", "hidden", "TestOnly"}}, time.Second)
	require.Equal(t, gates.Open, missing.Status)
	require.Contains(t, missing.Reason, "hidden, TestOnly")

	noDoc := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(noDoc, "x.go"), []byte("package x\n"), 0o644))
	require.Equal(t, gates.Open, runCheck(t, gates.GoPackageCheck{Dir: noDoc}, time.Second).Status)
	require.Equal(t, gates.Open, runCheck(t, gates.GoPackageCheck{Dir: filepath.Join(dir, "absent")}, time.Second).Status)
}

func TestCommandCheck(t *testing.T) {
	t.Parallel()
	ok := runCheck(t, gates.CommandCheck{Args: []string{"sh", "-c", "echo all good"}}, 5*time.Second)
	require.Equal(t, gates.Closed, ok.Status)
	require.Contains(t, ok.Evidence, "all good")

	fail := runCheck(t, gates.CommandCheck{Args: []string{"sh", "-c", "echo broken >&2; exit 3"}}, 5*time.Second)
	require.Equal(t, gates.Open, fail.Status)
	require.Contains(t, fail.Reason, "broken")

	start := time.Now()
	slow := runCheck(t, gates.CommandCheck{Args: []string{"sleep", "30"}}, 200*time.Millisecond)
	require.Equal(t, gates.Open, slow.Status)
	require.Contains(t, slow.Reason, "timeout")
	require.Less(t, time.Since(start), 20*time.Second, "the overrunning command was killed")
}

func TestHTTPCheck(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/deep", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Correlation-ID", "abc")
		_, _ = w.Write([]byte(`{"status":"ok","checks":{"postgres":{"status":"ok","latency_ms":3}},"queues":4}`))
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	pass := gates.HTTPCheck{URL: srv.URL + "/health/deep", JSON: map[string]string{"status": "ok", "checks.postgres.status": "ok", "queues": "4"},
		Headers: map[string]string{"X-Correlation-ID": "*", "Content-Type": "application/json"}, Budget: 5 * time.Second}
	require.Equal(t, gates.Closed, runCheck(t, pass, 5*time.Second).Status)

	for name, c := range map[string]gates.HTTPCheck{
		"wrong status":     {URL: srv.URL + "/health/deep", Status: http.StatusServiceUnavailable},
		"wrong JSON value": {URL: srv.URL + "/health/deep", JSON: map[string]string{"status": "degraded"}},
		"missing field":    {URL: srv.URL + "/health/deep", JSON: map[string]string{"checks.redis.status": "ok"}},
		"missing header":   {URL: srv.URL + "/health/deep", Headers: map[string]string{"RateLimit": "*"}},
		"not found":        {URL: srv.URL + "/nope"},
	} {
		got := runCheck(t, c, 5*time.Second)
		require.Equal(t, gates.Open, got.Status, name)
		require.NotEmpty(t, got.Reason, name)
	}

	slow := runCheck(t, gates.HTTPCheck{URL: srv.URL + "/slow"}, 200*time.Millisecond)
	require.Equal(t, gates.Open, slow.Status)
}

func TestSQLCheck(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	zero, two := 0, 2
	require.Equal(t, gates.Closed, runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT 1 WHERE false", WantRows: &zero}, 5*time.Second).Status)
	require.Equal(t, gates.Closed, runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT generate_series(1, 2)", WantRows: &two}, 5*time.Second).Status)
	require.Equal(t, gates.Closed, runCheck(t, gates.SQLCheck{URL: db.URL(pgtest.RoleAdmin), Query: "SELECT true"}, 5*time.Second).Status)

	findings := runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT 'platform.leads', 'no policy'", WantRows: &zero}, 5*time.Second)
	require.Equal(t, gates.Open, findings.Status)
	require.Contains(t, findings.Reason, "platform.leads")
	require.Equal(t, gates.Open, runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT false"}, 5*time.Second).Status)
	require.Equal(t, gates.Open, runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT nonsense"}, 5*time.Second).Status)

	slow := runCheck(t, gates.SQLCheck{DB: db.Admin, Query: "SELECT pg_sleep(30) IS NULL"}, 300*time.Millisecond)
	require.Equal(t, gates.Open, slow.Status)
}

func TestFuncCheckThatIgnoresItsDeadlineIsOpen(t *testing.T) {
	t.Parallel()
	stuck := gates.CheckFunc(func(context.Context) gates.Result {
		time.Sleep(time.Second)
		return gates.Result{Status: gates.Closed, Evidence: "too late"}
	})
	got := runCheck(t, stuck, 50*time.Millisecond)
	require.Equal(t, gates.Open, got.Status)
	require.Contains(t, got.Reason, "timeout")

	panics := gates.CheckFunc(func(context.Context) gates.Result { panic("boom") })
	require.Equal(t, gates.Open, runCheck(t, panics, time.Second).Status)

	bogus := gates.CheckFunc(func(context.Context) gates.Result { return gates.Result{Status: "green"} })
	require.Equal(t, gates.Open, runCheck(t, bogus, time.Second).Status)
}
