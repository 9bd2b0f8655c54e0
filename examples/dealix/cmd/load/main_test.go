package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/ratelimit"
)

func TestMain(m *testing.M) {
	var fns []pgtest.MigrateFunc
	for _, fn := range server.Migrations() {
		fns = append(fns, fn)
	}
	pgtest.Main(m, pgtest.WithMigrations(fns...))
}

// target is a real server over its own database, served on loopback.
type target struct {
	url string
	key []byte
	db  *pgtest.DB
}

func newTarget(t *testing.T) target {
	t.Helper()
	db := pgtest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, server.Config{
		DatabaseURL:       db.URL(pgtest.RoleOwner),
		AppDatabaseURL:    db.URL(pgtest.RoleApp),
		SystemDatabaseURL: db.URL(pgtest.RoleSystem),
		JWTHMACKey:        key,
		SkipDemo:          true,
		// The load must measure the server, not its per-tenant quota.
		RateLimit: ratelimit.Rate{Requests: 1_000_000, Window: time.Second},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return target{url: ts.URL, key: key, db: db}
}

// loadLeads counts the leads the load tool made, across tenants.
func loadLeads(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	var n int
	if err := db.System.QueryRow(context.Background(),
		`SELECT count(*) FROM dealix.leads WHERE source = 'load'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkSums asserts the report's counts add up: rows to the total, and in
// each row statuses plus transport errors to the count.
func checkSums(t *testing.T, rep *Report) {
	t.Helper()
	total, errs := 0, 0
	for _, o := range rep.Ops {
		n, bad := 0, 0
		for code, c := range o.Statuses {
			n += c
			if !strings.HasPrefix(code, "2") {
				bad += c
			}
		}
		for _, c := range o.Transport {
			n += c
			bad += c
		}
		if n != o.Count {
			t.Errorf("%s: statuses add to %d, count %d", o.Op, n, o.Count)
		}
		if bad != o.Errors {
			t.Errorf("%s: %d answers outside 2xx, errors %d", o.Op, bad, o.Errors)
		}
		if !(o.P50 <= o.P95 && o.P95 <= o.P99 && o.P99 <= o.Max) {
			t.Errorf("%s: percentiles out of order: %+v", o.Op, o)
		}
		total += o.Count
		errs += o.Errors
	}
	if total != rep.Requests || errs != rep.Errors {
		t.Errorf("rows add to %d requests and %d errors; report says %d and %d", total, errs, rep.Requests, rep.Errors)
	}
}

func TestMixAgainstServer(t *testing.T) {
	tg := newTarget(t)
	const budget = 400
	rep, err := Run(context.Background(), Options{
		Target: tg.url, Duration: 5 * time.Minute, MaxRequests: budget,
		Concurrency: 4, Tenants: 3, HMACKey: tg.key,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != budget {
		t.Fatalf("requests %d, want the budget %d (cut %d)", rep.Requests, budget, rep.Cut)
	}
	if rep.Tenants != 3 || rep.Credentials != 6 {
		t.Fatalf("tenants %d, credentials %d; want 3 tenants, each with a JWT and an API key", rep.Tenants, rep.Credentials)
	}
	checkSums(t, rep)

	create := rep.Op(OpCreate)
	if create == nil || create.Statuses["201"] != create.Count {
		t.Fatalf("creates: %+v, want all 201", create)
	}
	for _, op := range []string{OpList, OpGet} {
		if o := rep.Op(op); o == nil || o.Statuses["200"] != o.Count {
			t.Errorf("%s: %+v, want all 200", op, o)
		}
	}
	if o := rep.Op(OpRetry); o == nil || o.Statuses["201"] != o.Count || o.Replayed != o.Count {
		t.Errorf("retries: %+v, want every one a replayed 201", o)
	}
	if o := rep.Op(OpPatch); o == nil || o.Statuses["200"]+o.Statuses["412"] != o.Count || o.Statuses["200"] == 0 {
		t.Errorf("patches: %+v, want 200 (or 412 when another worker changed the lead first)", o)
	}
	// A retried key never made a second lead.
	if n := loadLeads(t, tg.db); n != create.Count {
		t.Errorf("%d leads in the database, %d acknowledged creates", n, create.Count)
	}
	// Deals: measured when the server has them, else skipped with a note
	// and never sent.
	skipped := false
	for _, n := range rep.Notes {
		skipped = skipped || strings.Contains(n, "deal close skipped")
	}
	if skipped && (rep.Op(OpDealCreate) != nil || rep.Op(OpDealClose) != nil) {
		t.Errorf("deals skipped (%q) but sent", rep.Notes)
	}
	if !skipped && (rep.Op(OpDealClose) == nil || rep.Op(OpDealClose).Errors != 0) {
		t.Errorf("deals served but closes %+v", rep.Op(OpDealClose))
	}
	// The only answers outside 2xx allowed: a patch that lost the race
	// for a lead's version to another worker.
	if stale := rep.Op(OpPatch).Statuses["412"]; rep.Errors != stale {
		t.Errorf("%d errors, %d of them stale patches", rep.Errors, stale)
	}
	// JSON: the same figures back.
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Requests != rep.Requests || len(back.Ops) != len(rep.Ops) || back.Ops[0].Statuses == nil {
		t.Fatalf("JSON round trip lost figures: %s", buf.Bytes())
	}
	// Table: a row per operation.
	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Ops {
		if !strings.Contains(buf.String(), "\n"+o.Op) && !strings.Contains(buf.String(), " "+o.Op+" ") {
			t.Errorf("table has no row for %s:\n%s", o.Op, buf.String())
		}
	}
	t.Logf("report:\n%s", buf.String())
	// Chart: well-formed XML with a path per operation.
	buf.Reset()
	if err := rep.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	paths := svgPaths(t, buf.Bytes())
	for _, o := range rep.Ops {
		if d := paths[o.Op]; !strings.HasPrefix(d, "M") || strings.Count(d, "L") < 1 {
			t.Errorf("chart: path of %s is %q", o.Op, d)
		}
	}
	if len(paths) != len(rep.Ops) {
		t.Errorf("chart has %d paths, report %d operations", len(paths), len(rep.Ops))
	}
}

// svgPaths parses an SVG document fully and returns its paths' d by
// data-op.
func svgPaths(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	paths := map[string]string{}
	root := ""
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Local
			}
			if se.Name.Local == "path" {
				var op, d string
				for _, a := range se.Attr {
					switch a.Name.Local {
					case "data-op":
						op = a.Value
					case "d":
						d = a.Value
					}
				}
				paths[op] = d
			}
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return paths
}

func TestOpenLoopAndBareComparison(t *testing.T) {
	tg := newTarget(t)
	rep, err := Compare(context.Background(), Options{
		Target: tg.url, Duration: 5 * time.Minute, MaxRequests: 60, Rate: 200,
		Concurrency: 8, Tenants: 2, HMACKey: tg.key, Mix: Mix{Create: 1},
	}, tg.db.URL(pgtest.RoleApp), 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, rep)
	checkSums(t, rep.Bare)
	full, bare := rep.Op(OpCreate), rep.Bare.Op(OpCreate)
	if full == nil || full.Count != 60 || full.Statuses["201"] != 60 {
		t.Fatalf("full creates: %+v", full)
	}
	if bare == nil || bare.Count != 60 || bare.Statuses["201"] != 60 {
		t.Fatalf("bare creates: %+v", bare)
	}
	if rep.Rounds != 3 || rep.Ratio <= 0 {
		t.Fatalf("ratio %v", rep.Ratio)
	}
	// Both stacks wrote through the same table, under row-level security.
	if n := loadLeads(t, tg.db); n != 120 {
		t.Fatalf("%d leads, want 120", n)
	}
	// Both stacks enqueued each lead's scoring job with it.
	var jobs int
	if err := tg.db.System.QueryRow(context.Background(),
		`SELECT count(*) FROM platform.dlq_jobs WHERE queue = 'scoring'`).Scan(&jobs); err != nil || jobs != 120 {
		t.Fatalf("%d scoring jobs (%v), want 120", jobs, err)
	}
	var buf bytes.Buffer
	if err := rep.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	if paths := svgPaths(t, buf.Bytes()); paths["create"] == "" || paths["bare create"] == "" {
		t.Fatalf("chart paths: %v", paths)
	}
}

func TestProgramWritesReports(t *testing.T) {
	tg := newTarget(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{
		"-target", tg.url, "-hmac-key", base64.StdEncoding.EncodeToString(tg.key),
		"-rate", "100", "-duration", "5m", "-requests", "50", "-tenants", "2", "-prefill", "5",
		// No patches: two workers racing for one lead's version may meet
		// a 412, which -max-errors counts (TestMixAgainstServer covers them).
		"-mix", "create=30,retry=20,list=20,get=20,close=10",
		"-json", filepath.Join(dir, "r.json"), "-svg", filepath.Join(dir, "r.svg"),
		"-max-p95", "1h", "-max-errors", "0",
	}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
	}
	var rep Report
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Requests != 50 || rep.Errors != 0 {
		t.Fatalf("JSON report: %v %s", err, b)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "r.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(svgPaths(t, svg)) != len(rep.Ops) {
		t.Fatalf("chart paths do not match the %d operations", len(rep.Ops))
	}
	// Prefilled leads (2 tenants × 5) are in the database but not in the
	// report.
	created := 0
	if o := rep.Op(OpCreate); o != nil {
		created = o.Statuses["201"]
	}
	if n := loadLeads(t, tg.db); n != 10+created {
		t.Fatalf("%d leads, want 10 prefilled + %d created", n, created)
	}
	if !strings.Contains(out.String(), "p95 ms") {
		t.Fatalf("no table on stdout:\n%s", out.String())
	}
}

func TestRefusesNonLoopbackTargets(t *testing.T) {
	for _, target := range []string{
		"http://10.0.0.1:8080", "http://192.0.2.7", "http://example.com", "http://[2001:db8::1]:80",
		"http://0.0.0.0:8080", "http://127.0.0.1.example.com",
	} {
		_, err := Run(context.Background(), Options{Target: target, Duration: time.Second, MaxRequests: 1, HMACKey: make([]byte, 32)})
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: err %v, want ErrNotLoopback", target, err)
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"-target", target, "-requests", "1", "-hmac-key", base64.StdEncoding.EncodeToString(make([]byte, 32))}, &out, &errOut); code != 2 {
			t.Errorf("%s: exit %d, want 2", target, code)
		}
	}
	// The dialer refuses too, before any packet leaves: a name that
	// resolves elsewhere or a redirect cannot lead the tool off the machine.
	if _, err := newClient(1, time.Second).Get("http://10.255.255.1:9/"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("dial of 10.255.255.1: %v, want ErrNotLoopback", err)
	}
	// An unbounded run is refused.
	for _, o := range []Options{{Target: "http://127.0.0.1:1", MaxRequests: 1}, {Target: "http://127.0.0.1:1", Duration: time.Second}} {
		o.HMACKey = make([]byte, 32)
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v: unbounded run accepted", o)
		}
	}
}
