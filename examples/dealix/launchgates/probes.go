package launchgates

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dealix/platform/gates"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// health: GET /health answers 200.
func (p probe) health(ctx context.Context) (string, error) {
	a, err := p.do(ctx, http.MethodGet, "/health", "", "")
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("GET /health: %s", a)
	}
	return fmt.Sprintf("GET /health 200 in %s", a.elapsed.Round(time.Millisecond)), nil
}

// deepHealth: GET /health/deep answers 200 with status ok, and lists its
// checks with their state.
func (p probe) deepHealth(ctx context.Context) (string, error) {
	a, err := p.do(ctx, http.MethodGet, "/health/deep", "", "")
	if err != nil {
		return "", err
	}
	var doc struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Status string         `json:"status"`
			Data   map[string]any `json:"data"`
		} `json:"checks"`
	}
	if err := a.json(&doc); err != nil {
		return "", fmt.Errorf("GET /health/deep: %w", err)
	}
	var parts []string
	for _, name := range sortedKeys(doc.Checks) {
		c := doc.Checks[name]
		part := name + "=" + c.Status
		if ms, ok := c.Data["latency_ms"]; ok {
			part += fmt.Sprintf(" (%vms)", ms)
		}
		parts = append(parts, part)
	}
	if a.status != http.StatusOK || doc.Status != "ok" {
		return "", fmt.Errorf("GET /health/deep: %d status=%s: %s", a.status, doc.Status, strings.Join(parts, ", "))
	}
	if len(doc.Checks) == 0 {
		return "", errors.New("GET /health/deep lists no checks")
	}
	return fmt.Sprintf("GET /health/deep 200 in %s: %s", a.elapsed.Round(time.Millisecond), strings.Join(parts, ", ")), nil
}

// pricing: the price list is public (no credentials) and has exactly the
// starter, growth and scale plans.
func (p probe) pricing(ctx context.Context) (string, error) {
	a, err := p.do(ctx, http.MethodGet, "/api/v1/pricing/plans", "", "")
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("GET /api/v1/pricing/plans without credentials: %s, want 200", a)
	}
	var doc struct {
		Plans []struct {
			ID string `json:"id"`
		} `json:"plans"`
	}
	if err := a.json(&doc); err != nil {
		return "", err
	}
	var ids []string
	for _, pl := range doc.Plans {
		ids = append(ids, pl.ID)
	}
	sorted := slices.Sorted(slices.Values(ids))
	if !slices.Equal(sorted, []string{"growth", "scale", "starter"}) {
		return "", fmt.Errorf("public plans %v, want starter, growth and scale only", ids)
	}
	return fmt.Sprintf("GET /api/v1/pricing/plans without credentials: 200, plans %s", strings.Join(ids, ", ")), nil
}

// dlqStats: /admin/dlq/stats is admin-only and shows the four queues.
func (p probe) dlqStats(ctx context.Context) (string, error) {
	a, evidence, err := p.adminAnswers(ctx, "/admin/dlq/stats")
	if err != nil {
		return "", err
	}
	var doc struct {
		Queues []struct {
			Queue string `json:"queue"`
			Dead  int64  `json:"dead"`
		} `json:"queues"`
	}
	if err := a.json(&doc); err != nil {
		return "", err
	}
	seen := map[string]int64{}
	for _, q := range doc.Queues {
		seen[q.Queue] = q.Dead
	}
	var missing, parts []string
	for _, q := range Queues {
		dead, ok := seen[q]
		if !ok {
			missing = append(missing, q)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s dead=%d", q, dead))
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("/admin/dlq/stats lacks the queues %v", missing)
	}
	return fmt.Sprintf("/admin/dlq/stats: %s; %s", strings.Join(parts, ", "), strings.Join(evidence, ", ")), nil
}

// approvalsAnswer: /admin/approvals is admin-only.
func (p probe) approvalsAnswer(ctx context.Context) (string, error) {
	_, evidence, err := p.adminAnswers(ctx, "/admin/approvals")
	if err != nil {
		return "", err
	}
	return "/admin/approvals: " + strings.Join(evidence, ", "), nil
}

// costs: /admin/costs is admin-only and answers JSON.
func (p probe) costs(ctx context.Context) (string, error) {
	a, evidence, err := p.adminAnswers(ctx, "/admin/costs")
	if err != nil {
		return "", err
	}
	var doc map[string]any
	if err := a.json(&doc); err != nil {
		return "", err
	}
	return fmt.Sprintf("/admin/costs: %s; fields %s", strings.Join(evidence, ", "), strings.Join(sortedKeys(doc), ", ")), nil
}

// webhooksRefuseUnsigned: each webhook route answers an unsigned delivery
// 401, and one with a forged signature too.
func (p probe) webhooksRefuseUnsigned(ctx context.Context) (string, error) {
	var parts []string
	for _, route := range WebhookRoutes {
		body := `{"id":"gate-probe-` + randomHex(4) + `","type":"probe"}`
		a, err := p.do(ctx, http.MethodPost, webhookPath(route), "", body)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusUnauthorized {
			return "", fmt.Errorf("POST %s unsigned: %s, want 401", route, a)
		}
		forged, err := p.do(ctx, http.MethodPost, webhookPath(route), "", body,
			"X-Signature", "sha256="+randomHex(32), "X-HubSpot-Signature-v3", randomHex(32),
			"Calendly-Webhook-Signature", "t=1,v1="+randomHex(32), "X-Moyasar-Signature", randomHex(32))
		if err != nil {
			return "", err
		}
		if forged.status != http.StatusUnauthorized {
			return "", fmt.Errorf("POST %s with a forged signature: %s, want 401", route, forged)
		}
		parts = append(parts, route+" 401")
	}
	return "unsigned and forged deliveries refused: " + strings.Join(parts, ", "), nil
}

// correlationEcho: a well-formed X-Correlation-ID comes back as sent.
func (p probe) correlationEcho(ctx context.Context) (string, error) {
	id := "gate-" + randomHex(8)
	a, err := p.do(ctx, http.MethodGet, "/health", "", "", "X-Correlation-ID", id)
	if err != nil {
		return "", err
	}
	if got := a.header.Get("X-Correlation-ID"); got != id {
		return "", fmt.Errorf("sent X-Correlation-ID %s, got %q back", id, got)
	}
	return "X-Correlation-ID " + id + " echoed", nil
}

// correlationTrace: without a correlation id, the one the server makes is
// the trace id of the request's traceparent, so logs, spans and the
// business id meet.
func (p probe) correlationTrace(ctx context.Context) (string, error) {
	traceID := randomHex(16)
	a, err := p.do(ctx, http.MethodGet, "/health", "", "", "traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
	if err != nil {
		return "", err
	}
	if got := a.header.Get("X-Correlation-ID"); got != traceID {
		return "", fmt.Errorf("traceparent with trace id %s: X-Correlation-ID %q, want the trace id", traceID, got)
	}
	return "traceparent trace id " + traceID + " became the X-Correlation-ID", nil
}

// telemetry is O1: the correlation id is echoed and bound to the trace.
func (p probe) telemetry(ctx context.Context) (string, error) {
	echo, err := p.correlationEcho(ctx)
	if err != nil {
		return "", err
	}
	trace, err := p.correlationTrace(ctx)
	if err != nil {
		return "", err
	}
	return echo + "; " + trace, nil
}

// apiKeys is S2: a bad key is 401 (a problem, never 500), the admin
// credential is served with the rate limit's headers.
func (p probe) apiKeys(ctx context.Context) (string, error) {
	var parts []string
	for _, bad := range []string{"dlx_" + randomHex(16), "not-a-key", "dlx_"} {
		a, err := p.do(ctx, http.MethodGet, "/api/v1/leads", "", "", "X-API-Key", bad)
		if err != nil {
			return "", err
		}
		if a.status != http.StatusUnauthorized {
			return "", fmt.Errorf("GET /api/v1/leads with the bad key %q: %s, want 401", bad, a)
		}
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			return "", fmt.Errorf("bad key answered with Content-Type %q, want application/problem+json", ct)
		}
	}
	parts = append(parts, "3 bad keys: 401 problem+json")
	if p.cfg.AdminToken == "" {
		return "", errors.New("no credential configured to show the rate limit applies")
	}
	a, err := p.do(ctx, http.MethodGet, "/api/v1/leads", p.cfg.AdminToken, "")
	if err != nil {
		return "", err
	}
	if a.status != http.StatusOK {
		return "", fmt.Errorf("GET /api/v1/leads with the configured credential: %s", a)
	}
	policy := a.header.Get("RateLimit-Policy")
	if policy == "" || a.header.Get("RateLimit") == "" {
		return "", errors.New("GET /api/v1/leads: no RateLimit-Policy and RateLimit headers, so no rate limit applies")
	}
	parts = append(parts, fmt.Sprintf("valid credential: 200 with RateLimit-Policy %s, RateLimit %s", policy, a.header.Get("RateLimit")))
	return strings.Join(parts, "; "), nil
}

// cors is S6: a preflight from an origin not on the list gets no CORS
// headers; an allowed origin, when configured, is named back (never "*").
func (p probe) cors(ctx context.Context) (string, error) {
	preflight := func(origin string) (answer, error) {
		return p.do(ctx, http.MethodOptions, "/api/v1/leads", "", "",
			"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
	}
	a, err := preflight(DisallowedOrigin)
	if err != nil {
		return "", err
	}
	for name := range a.header {
		if strings.HasPrefix(strings.ToLower(name), "access-control-") {
			return "", fmt.Errorf("preflight from %s got %s: %q", DisallowedOrigin, name, a.header.Get(name))
		}
	}
	evidence := fmt.Sprintf("preflight from %s: %d without CORS headers", DisallowedOrigin, a.status)
	if p.cfg.AllowedOrigin == "" {
		return evidence + " (no allowed origin configured to compare)", nil
	}
	ok, err := preflight(p.cfg.AllowedOrigin)
	if err != nil {
		return "", err
	}
	if got := ok.header.Get("Access-Control-Allow-Origin"); got != p.cfg.AllowedOrigin {
		return "", fmt.Errorf("preflight from the allowed %s: Access-Control-Allow-Origin %q", p.cfg.AllowedOrigin, got)
	}
	return evidence + "; " + p.cfg.AllowedOrigin + " allowed by name", nil
}

// idempotentReplay creates the probe lead twice with one key: the second
// answer is the first replayed.
func (p probe) idempotentReplay(ctx context.Context) (string, error) {
	if p.cfg.AdminToken == "" {
		return "", errors.New("no credential configured")
	}
	key := "gate-" + randomHex(8)
	body := `{"name":"` + ProbeName + `","company":"Dealix"}`
	first, err := p.do(ctx, http.MethodPost, "/api/v1/leads", p.cfg.AdminToken, body, "Idempotency-Key", key)
	if err != nil {
		return "", err
	}
	if first.status != http.StatusCreated {
		return "", fmt.Errorf("POST /api/v1/leads: %s, want 201", first)
	}
	again, err := p.do(ctx, http.MethodPost, "/api/v1/leads", p.cfg.AdminToken, body, "Idempotency-Key", key)
	if err != nil {
		return "", err
	}
	if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		return "", fmt.Errorf("retried POST /api/v1/leads: %s, Idempotent-Replayed %q; want the first answer replayed",
			again, again.header.Get("Idempotent-Replayed"))
	}
	return "retried create replayed (Idempotent-Replayed: true, same body)", nil
}

// queues is T5: the four queues with their dead letters, an idempotent
// replay, and the fault injection when one is configured.
func (p probe) queues(ctx context.Context) gates.Result {
	stats, err := p.dlqStats(ctx)
	if err != nil {
		return open("%v", err)
	}
	replay, err := p.idempotentReplay(ctx)
	if err != nil {
		return open("%s; but %v", stats, err)
	}
	evidence := stats + "; " + replay
	if p.cfg.FaultInjection == nil {
		return partial(evidence, "no fault-injection knob: a failing webhook landing dead and its re-drive are not exercised")
	}
	fault := p.cfg.FaultInjection.Run(ctx)
	if fault.Status != gates.Closed {
		return gates.Result{Status: gates.Partial, Evidence: evidence,
			Reason: "fault injection " + string(fault.Status) + ": " + fault.Reason}
	}
	return closed("%s; fault injection: %s", evidence, fault.Evidence)
}

// load is T6: LoadRequests requests at LoadRate per second to the public
// price list; every answer 200 and the 95th percentile within LoadP95.
func (p probe) load(ctx context.Context) (string, error) {
	n, rate := p.cfg.LoadRequests, p.cfg.LoadRate
	latencies := make([]time.Duration, n)
	failures := make([]error, n)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		if i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := p.do(ctx, http.MethodGet, "/api/v1/pricing/plans", "", "")
			switch {
			case err != nil:
				failures[i] = err
			case a.status != http.StatusOK:
				failures[i] = fmt.Errorf("status %d", a.status)
			}
			latencies[i] = a.elapsed
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	var failed int
	var firstErr error
	for _, err := range failures {
		if err != nil {
			failed++
			firstErr = cmpErr(firstErr, err)
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p50, p95, pmax := latencies[n/2], latencies[(n*95+99)/100-1], latencies[n-1]
	evidence := fmt.Sprintf("%d requests at %d/s to GET /api/v1/pricing/plans in %s: p50 %s, p95 %s, max %s, %d failed",
		n, rate, wall.Round(time.Millisecond), p50.Round(time.Microsecond), p95.Round(time.Microsecond), pmax.Round(time.Microsecond), failed)
	if failed > 0 {
		return "", fmt.Errorf("%s (first: %v)", evidence, firstErr)
	}
	if p95 > p.cfg.LoadP95 {
		return "", fmt.Errorf("%s: p95 over %s", evidence, p.cfg.LoadP95)
	}
	return evidence, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}
