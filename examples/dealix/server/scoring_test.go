package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/examples/dealix/server"
)

// scoreWait bounds every wait for background work in these tests.
const scoreWait = 60 * time.Second

// scoringEventually polls cond until it holds, failing after scoreWait.
func scoringEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(scoreWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after %s: %s", scoreWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scoringCount runs a count(*) query as the system role.
func scoringCount(t *testing.T, e *env, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.db.System.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// scoredLead creates a lead and waits for its score.
func scoredLead(t *testing.T, e *env, token, body string) (lead, scoring.Score) {
	t.Helper()
	l := e.createLead(token, body)
	return l, waitScore(t, e, token, l.ID)
}

// waitScore waits (watching the database, so the polls spend none of the
// tenant's rate limit) for the lead's score, then reads it through the API.
func waitScore(t *testing.T, e *env, token, id string) scoring.Score {
	t.Helper()
	scoringEventually(t, "the score of lead "+id, func() bool {
		return scoringCount(t, e, `SELECT count(*) FROM dealix.lead_scores WHERE lead_id = $1`, id) == 1
	})
	var sc scoring.Score
	r := e.do("GET", "/api/v1/leads/"+id+"/score", "", bearer(token)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &sc)
	return sc
}

func TestScoringQueueIsTheServers(t *testing.T) {
	if scoring.Queue != server.QueueScoring {
		t.Fatalf("scoring.Queue %q, server.QueueScoring %q", scoring.Queue, server.QueueScoring)
	}
}

func TestNewLeadIsScoredAndLedgered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	tok := e.token(tenant)
	body := `{"name":"Huda","email":"huda@najd-logistics.sa","company":"Najd Logistics","source":"referral","notes":"asked for a demo, budget approved"}`
	key := uuid.NewString()
	r := e.do("POST", "/api/v1/leads", body, with(bearer(tok), "Idempotency-Key", key, "X-Correlation-ID", "corr-lead-1")...)
	wantStatus(t, r, http.StatusCreated)
	var l lead
	r.json(t, &l)
	// The retried create replays the answer and enqueues nothing more.
	wantStatus(t, e.do("POST", "/api/v1/leads", body, with(bearer(tok), "Idempotency-Key", key, "X-Correlation-ID", "corr-lead-2")...), http.StatusCreated)

	sc := waitScore(t, e, tok, l.ID)
	want, err := scoring.Fake{}.Score(context.Background(), scoring.Input{
		Name: "Huda", Email: "huda@najd-logistics.sa", Company: "Najd Logistics", Source: "referral",
		Notes: "asked for a demo, budget approved"})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Score != want.Score || sc.Reason != want.Reason || sc.Model != scoring.FakeModelName || sc.CacheHit ||
		sc.CorrelationID == nil || *sc.CorrelationID != "corr-lead-1" {
		t.Fatalf("score %+v, want %d (%s) by %s with correlation id corr-lead-1", sc, want.Score, want.Reason, scoring.FakeModelName)
	}

	// One job, one ledger row with the request's correlation id and the
	// configured price.
	if n := scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND queue = 'scoring'`, tenant); n != 1 {
		t.Fatalf("%d scoring jobs, want 1", n)
	}
	var (
		model, corr, cost, wantCost string
		in, out                     int
		hit                         bool
		leadID                      string
	)
	err = e.db.System.QueryRow(context.Background(), `SELECT model, correlation_id, tokens_in, tokens_out, cost_usd::text,
			cache_hit, lead_id::text, round(($2::numeric * 0.5 + $3::numeric * 1.5) / 1000, 8)::text
		FROM dealix.model_calls WHERE tenant_id = $1`, tenant, want.TokensIn, want.TokensOut).
		Scan(&model, &corr, &in, &out, &cost, &hit, &leadID, &wantCost)
	if err != nil {
		t.Fatal(err)
	}
	if model != scoring.FakeModelName || corr != "corr-lead-1" || in != want.TokensIn || out != want.TokensOut ||
		cost != wantCost || hit || leadID != l.ID {
		t.Fatalf("ledger row %s %s %d/%d %s hit=%v lead %s; want tokens %d/%d cost %s", model, corr, in, out, cost, hit, leadID,
			want.TokensIn, want.TokensOut, wantCost)
	}
	// Another tenant sees no score of it.
	wantProblem(t, e.do("GET", "/api/v1/leads/"+l.ID+"/score", "", bearer(e.token(newTenant()))...), http.StatusNotFound)

	// A worker that dies after its transaction committed but before the job
	// is recorded done: the job runs again (here, made available again as
	// the lease rescue would) and records nothing twice.
	ctx := context.Background()
	// The completer stores the first run's completion in a batch of its
	// own, after the score committed: wait for it before rewinding.
	scoringEventually(t, "the scoring job's completion", func() bool {
		return scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND state = 'completed'`, tenant) == 1
	})
	if _, err := e.db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET state = 'available', finalized_at = NULL, run_at = now()
		WHERE tenant_id = $1 AND queue = 'scoring'`, tenant); err != nil {
		t.Fatal(err)
	}
	scoringEventually(t, "the scoring job's second run", func() bool {
		return scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE tenant_id = $1 AND state = 'completed' AND attempt = 2`, tenant) == 1
	})
	if n := scoringCount(t, e, `SELECT count(*) FROM dealix.model_calls WHERE tenant_id = $1`, tenant); n != 1 {
		t.Fatalf("%d ledger rows after the job ran again, want 1", n)
	}
}

// costReport is the JSON of GET /admin/costs, amounts kept exact.
type costReport struct {
	From, To time.Time
	Total    scoring.Usage
	ByModel  []scoring.ModelUsage `json:"by_model"`
	ByDay    []scoring.DayUsage   `json:"by_day"`
	Alerts   []scoring.Alert
}

func getCosts(t *testing.T, e *env, token, query string) costReport {
	t.Helper()
	r := e.do("GET", "/admin/costs"+query, "", bearer(token)...)
	wantStatus(t, r, http.StatusOK)
	var rep costReport
	dec := json.NewDecoder(strings.NewReader(string(r.body)))
	dec.UseNumber()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	return rep
}

func TestAdminCostsMatchTheLedger(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := newTenant(), newTenant()
	userA, adminA, adminB := e.token(a, "leads"), e.token(a, "admin"), e.token(b, "admin")

	same := `{"name":"Saad","company":"Riyadh Dates","source":"event"}`
	_, first := scoredLead(t, e, userA, same)
	_, second := scoredLead(t, e, userA, same) // the same input: answered from the cache
	_, third := scoredLead(t, e, userA, `{"name":"Reem","email":"reem@gmail.com"}`)
	if first.CacheHit || !second.CacheHit || third.CacheHit || first.Score != second.Score {
		t.Fatalf("cache hits: %v %v %v; scores %d %d", first.CacheHit, second.CacheHit, third.CacheHit, first.Score, second.Score)
	}
	scoredLead(t, e, adminB, `{"name":"Other tenant","company":"Dammam Steel"}`)

	rep := getCosts(t, e, adminA, "")
	var ledgerCost, today string
	var ledgerIn, ledgerOut int64
	if err := e.db.System.QueryRow(context.Background(), `SELECT sum(cost_usd)::text, sum(tokens_in), sum(tokens_out),
			(now() AT TIME ZONE 'UTC')::date::text FROM dealix.model_calls WHERE tenant_id = $1`, a).
		Scan(&ledgerCost, &ledgerIn, &ledgerOut, &today); err != nil {
		t.Fatal(err)
	}
	if !sameAmount(t, e, string(rep.Total.CostUSD), ledgerCost) || rep.Total.Calls != 3 || rep.Total.CacheHits != 1 ||
		rep.Total.TokensIn != ledgerIn || rep.Total.TokensOut != ledgerOut {
		t.Fatalf("total %+v; ledger cost %s, tokens %d/%d, 3 calls, 1 hit", rep.Total, ledgerCost, ledgerIn, ledgerOut)
	}
	if r := rep.Total.CacheHitRatio; r < 0.333 || r > 0.334 {
		t.Fatalf("cache hit ratio %v, want 1/3", r)
	}
	if len(rep.ByModel) != 1 || rep.ByModel[0].Model != scoring.FakeModelName || rep.ByModel[0].Calls != 3 ||
		!sameAmount(t, e, string(rep.ByModel[0].CostUSD), ledgerCost) {
		t.Fatalf("by model %+v", rep.ByModel)
	}
	if len(rep.ByDay) != 1 || rep.ByDay[0].Day != today || rep.ByDay[0].Calls != 3 || len(rep.ByDay[0].Models) != 1 ||
		!sameAmount(t, e, string(rep.ByDay[0].CostUSD), ledgerCost) {
		t.Fatalf("by day %+v (today %s)", rep.ByDay, today)
	}
	if d := rep.To.Sub(rep.From); d != 7*24*time.Hour || rep.From.Format(time.DateOnly) > today || rep.To.Format(time.DateOnly) <= today {
		t.Fatalf("default window %s .. %s (today %s)", rep.From, rep.To, today)
	}

	// B's admin sees B's call only; a window in the past holds nothing.
	if rb := getCosts(t, e, adminB, ""); rb.Total.Calls != 1 || rb.Total.CacheHits != 0 || len(rb.ByModel) != 1 {
		t.Fatalf("tenant B's report %+v", rb.Total)
	}
	if past := getCosts(t, e, adminA, "?from=2020-01-01&to=2020-01-07"); past.Total.Calls != 0 || len(past.ByDay) != 0 ||
		string(past.Total.CostUSD) != "0" || past.To.Format(time.DateOnly) != "2020-01-08" {
		t.Fatalf("past window %+v", past)
	}
	if one := getCosts(t, e, adminA, "?from="+today+"&to="+today); one.Total.Calls != 3 {
		t.Fatalf("today's window: %d calls", one.Total.Calls)
	}

	wantProblem(t, e.do("GET", "/admin/costs", "", bearer(userA)...), http.StatusForbidden)
	wantProblem(t, e.do("GET", "/admin/costs", ""), http.StatusUnauthorized)
	for _, q := range []string{"?from=yesterday", "?from=2026-02-01&to=2026-01-01", "?from=2020-01-01&to=2026-01-01", "?tenant=" + b, "?to=1&to=2"} {
		wantProblem(t, e.do("GET", "/admin/costs"+q, "", bearer(adminA)...), http.StatusBadRequest)
	}
}

// sameAmount compares two decimals as PostgreSQL numerics.
func sameAmount(t *testing.T, e *env, a, b string) bool {
	t.Helper()
	var eq bool
	if err := e.db.System.QueryRow(context.Background(), `SELECT $1::numeric = $2::numeric`, a, b).Scan(&eq); err != nil {
		t.Fatal(err)
	}
	return eq
}

// alertReceiver is a Slack-compatible webhook that refuses its first post
// (so the post is retried) and counts the accepted ones per alert id.
type alertReceiver struct {
	mu       sync.Mutex
	posts    int
	accepted map[string]int
	texts    []string
}

func (a *alertReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg struct{ Text string }
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &msg) != nil || msg.Text == "" {
		http.Error(w, "not a Slack message", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.posts++
	if a.posts == 1 {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	a.accepted[r.Header.Get("X-Dealix-Alert-ID")]++
	a.texts = append(a.texts, msg.Text)
	_, _ = io.WriteString(w, "ok")
}

func (a *alertReceiver) snapshot() (int, map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := map[string]int{}
	for k, v := range a.accepted {
		m[k] = v
	}
	return a.posts, m
}

// TestCostAlertOncePerTenantPerDay runs two server instances on one
// database (sixteen scoring workers) over forty leads of two tenants,
// every one of whose calls passes the threshold. It is not parallel: the
// configuration is read from the environment.
func TestCostAlertOncePerTenantPerDay(t *testing.T) {
	recv := &alertReceiver{accepted: map[string]int{}}
	hook := httptest.NewServer(recv)
	t.Cleanup(hook.Close)
	t.Setenv(scoring.EnvAlertURL, hook.URL)
	t.Setenv(scoring.EnvAlertUSD, "0.1") // passed by the second or third call of a tenant
	t.Setenv(scoring.EnvPrices, scoring.FakeModelName+"=0.5/1.5")

	e := newEnv(t)
	second := secondScoringServer(t, e)
	urls := []string{e.url, second}
	tenants := []string{newTenant(), newTenant()}

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		tenant := tenants[i%2]
		wg.Go(func() {
			body := fmt.Sprintf(`{"name":"Lead %d","company":"Company %d","notes":"distinct input %d"}`, i, i, i)
			req, _ := http.NewRequest("POST", urls[i%2]+"/api/v1/leads", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.token(tenant))
			req.Header.Set("Idempotency-Key", uuid.NewString())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("create: %s", resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	allDone := func() bool {
		return scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE queue = 'scoring' AND state <> 'completed'`) == 0 &&
			scoringCount(t, e, `SELECT count(*) FROM dealix.cost_alerts WHERE sent_at IS NOT NULL`) == 2
	}
	scoringEventually(t, "forty scores and two alerts sent", allDone)
	if n := scoringCount(t, e, `SELECT count(*) FROM dealix.model_calls`); n != 40 {
		t.Fatalf("%d ledger rows, want 40", n)
	}
	// Every call after the first few passed the threshold, yet each tenant
	// has one alert, one post job, and one accepted post.
	passed := scoringCount(t, e, `SELECT count(*) FROM dealix.model_calls c WHERE (SELECT sum(cost_usd) FROM dealix.model_calls p
		WHERE p.tenant_id = c.tenant_id AND p.id <= c.id) > 0.1`)
	if passed < 30 {
		t.Fatalf("only %d calls passed the threshold; the test needs many", passed)
	}
	if n := scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE kind = $1`, scoring.KindAlert); n != 2 {
		t.Fatalf("%d alert jobs, want 2", n)
	}
	posts, accepted := recv.snapshot()
	if posts != 3 || len(accepted) != 2 {
		t.Fatalf("%d posts (want 3: one refused, one per tenant), accepted %v", posts, accepted)
	}
	for _, tenant := range tenants {
		var day string
		if err := e.db.System.QueryRow(context.Background(), `SELECT day::text FROM dealix.cost_alerts WHERE tenant_id = $1`, tenant).Scan(&day); err != nil {
			t.Fatal(err)
		}
		if accepted[tenant+"/"+day] != 1 {
			t.Fatalf("tenant %s: accepted %v", tenant, accepted)
		}
	}
	recv.mu.Lock()
	for _, text := range recv.texts {
		if !strings.Contains(text, "above the daily threshold of $0.1") {
			t.Fatalf("alert text %q", text)
		}
	}
	recv.mu.Unlock()

	// More calls the same day, and the report shows the sent alert.
	tok := e.token(tenants[0])
	scoredLead(t, e, tok, `{"name":"One more","notes":"after the alert"}`)
	// An alert job run again after its post was accepted posts nothing.
	var day string
	if err := e.db.System.QueryRow(context.Background(), `SELECT day::text FROM dealix.cost_alerts WHERE tenant_id = $1`, tenants[0]).Scan(&day); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Platform().Jobs.EnqueueForTenant(context.Background(), tenants[0], dlq.JobParams{
		Queue: scoring.Queue, Kind: scoring.KindAlert, Payload: scoring.AlertJob{Day: day}}); err != nil {
		t.Fatal(err)
	}
	scoringEventually(t, "the scoring queue drains", func() bool {
		return scoringCount(t, e, `SELECT count(*) FROM platform.dlq_jobs WHERE state <> 'completed'`) == 0
	})
	if posts2, _ := recv.snapshot(); posts2 != posts {
		t.Fatalf("%d posts after a later call and a repeated alert job, want %d", posts2, posts)
	}
	rep := getCosts(t, e, e.token(tenants[0], "admin"), "")
	if len(rep.Alerts) != 1 || rep.Alerts[0].SentAt == nil || rep.Total.Calls != 21 {
		t.Fatalf("report alerts %+v, calls %d", rep.Alerts, rep.Total.Calls)
	}
}

// secondScoringServer starts another instance on e's database: its
// workers compete with e's for the same jobs.
func secondScoringServer(t *testing.T, e *env) string {
	t.Helper()
	urls := urlsFor(t, e.db)
	cfg := server.Config{
		DatabaseURL:       urls.owner,
		AppDatabaseURL:    urls.app,
		SystemDatabaseURL: urls.system,
		ListenDatabaseURL: urls.listen,
		JWTHMACKey:        e.key,
		SkipDemo:          true,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("second server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("second server Shutdown: %v", err)
		}
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}
