package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/pgtest"
)

// PostgreSQL restarted while a small load runs: while it is down every
// answer is a 503 problem with Retry-After (never a 500) and /health/deep
// names postgres as down; afterwards the same server recovers by itself
// (2xx again, the scoring workers score leads created before, during and
// after the outage), every acknowledged create is in the database, and
// each create that failed, retried with its Idempotency-Key, runs once.
func TestFaultsPostgresRestartUnderLoad(t *testing.T) {
	db, restart := pgtest.NewRestartable(t)
	e := faultsServer(t, db, faultsKey())
	var tokens []string
	var tenants []string
	for range 3 {
		tenant := newTenant()
		tenants = append(tenants, tenant)
		tokens = append(tokens, e.token(tenant))
	}

	var tally faultsTally
	var restarting atomic.Bool
	var duringOutage faultsTally // answers sent and received while restart ran
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range faultsScale(4, 2) {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				token := tokens[(w+i)%len(tokens)]
				before := restarting.Load()
				var a faultsAnswer
				if i%4 == 3 {
					a = faultsSend(e.url, http.MethodGet, "/api/v1/leads?limit=20", "", token)
				} else {
					a = faultsCreate(e.url, token)
				}
				a.body = token + "\n" + a.body // remember the credential for the retry
				tally.add(a)
				if before && restarting.Load() {
					duringOutage.add(a)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	// /health/deep watched throughout.
	var deepDown, deepDownNamed atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			resp, err := faultsClient.Get(e.url + "/health/deep")
			if err == nil {
				var rep struct {
					Status string `json:"status"`
					Checks map[string]struct {
						Status string `json:"status"`
					} `json:"checks"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&rep)
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					deepDown.Add(1)
					if rep.Checks["postgres"].Status == "down" {
						deepDownNamed.Add(1)
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	time.Sleep(time.Duration(faultsScale(1, 10)) * time.Second)
	rounds := faultsScale(1, 3)
	for range rounds {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		restarting.Store(true)
		err := restart(rctx)
		restarting.Store(false)
		cancel()
		if err != nil {
			stopLoad()
			wg.Wait()
			t.Fatalf("restart: %v", err)
		}
		// Recovery without touching the server: a create succeeds again.
		faultsEventually(t, 30*time.Second, "a create to succeed after the restart", func() bool {
			return faultsCreate(e.url, tokens[0]).status == http.StatusCreated
		})
		time.Sleep(time.Duration(faultsScale(1, 5)) * time.Second)
	}
	stopLoad()
	wg.Wait()
	t.Logf("answers: %s; during the outage: %s; /health/deep 503: %d (postgres named: %d)",
		&tally, &duringOutage, deepDown.Load(), deepDownNamed.Load())

	// Never a 500, never a hang: every answer is 2xx or a 503 problem
	// with Retry-After.
	answers := tally.answers()
	var ok2xx, unavailable, idemUnavailable int
	for _, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("%s: no answer: %v", a.op, a.err)
		case a.status/100 == 2:
			ok2xx++
		case a.status == http.StatusServiceUnavailable:
			unavailable++
			if faultsIdempotencyUnavailable(a) {
				// The idempotency middleware answers its store's outage
				// itself (counted, reported), with Retry-After too.
				idemUnavailable++
			}
			if a.retryAfter == "" || a.ctype != "application/problem+json" {
				t.Errorf("%s: 503 with Retry-After %q, Content-Type %q", a.op, a.retryAfter, a.ctype)
			}
		default:
			t.Errorf("%s: status %d", a.op, a.status)
		}
	}
	if unavailable == 0 || deepDownNamed.Load() == 0 {
		t.Fatalf("the outage was not seen: %d 503s, %d /health/deep naming postgres down", unavailable, deepDownNamed.Load())
	}
	if r := faultsSend(e.url, http.MethodGet, "/health/deep", "", tokens[0]); r.status != http.StatusOK {
		t.Fatalf("/health/deep after recovery: %d", r.status)
	}

	// Every acknowledged create is there; every failed one, retried with
	// its key, is answered and runs once.
	ids := map[string]bool{}
	var retried int
	for _, a := range answers {
		if !strings.HasPrefix(a.op, "POST") {
			continue
		}
		if a.status/100 == 2 {
			ids[a.id] = true
			continue
		}
		token, body, _ := strings.Cut(a.body, "\n")
		r := faultsSend(e.url, http.MethodPost, "/api/v1/leads", body, token, "Idempotency-Key", a.key)
		if r.status != http.StatusCreated {
			t.Fatalf("retry of key %s after recovery: %d", a.key, r.status)
		}
		retried++
		ids[r.id] = true
	}
	var sys *pgxpool.Pool = db.System
	var acked int
	if err := sys.QueryRow(context.Background(),
		`SELECT count(*) FROM dealix.leads WHERE id = ANY($1::uuid[])`, keys(ids)).Scan(&acked); err != nil {
		t.Fatal(err)
	}
	total := faultsCount(t, db, `SELECT count(*) FROM dealix.leads WHERE tenant_id = ANY($1::uuid[])`, tenants)
	t.Logf("%d answers (%d 2xx, %d 503 of which %d answered by the idempotency store); %d failed creates retried; %d distinct leads acknowledged, %d found, %d in the tenants' tables",
		len(answers), ok2xx, unavailable, idemUnavailable, retried, len(ids), acked, total)
	if acked != len(ids) {
		t.Fatalf("%d of %d acknowledged leads are in the database", acked, len(ids))
	}
	// The recovery probes created leads too (one per round at least);
	// those are the only ones beyond the load's.
	if total < len(ids) || total > len(ids)+faultsScale(50, 3)*rounds {
		t.Fatalf("%d leads in the tenants' tables for %d acknowledged", total, len(ids))
	}

	// Workers resumed: every lead, including those created during and
	// after the outage, gets its score.
	faultsEventually(t, 60*time.Second, "every lead scored", func() bool {
		return faultsCount(t, db, `SELECT count(*) FROM dealix.leads l
			WHERE l.tenant_id = ANY($1::uuid[])
			  AND NOT EXISTS (SELECT FROM dealix.lead_scores s WHERE s.lead_id = l.id)`, tenants) == 0
	})
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
