package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/internal/pgtest"
)

// Three servers on one database, the load spread over them: creates of
// leads and closes of deals go to all three, and every queue job and
// every durable step runs once, counted by its effects — one ledger row
// and one score per lead, one evidence, one task and two follow-ups sent
// per closed deal.
func TestFaultsThreeInstancesRunEachJobAndStepOnce(t *testing.T) {
	db := pgtest.New(t)
	key := faultsKey()
	var inst []*env
	for range 3 {
		inst = append(inst, faultsServer(t, db, key))
	}
	var tenants, tokens []string
	for range 3 {
		tenant := newTenant()
		tenants = append(tenants, tenant)
		tokens = append(tokens, inst[0].token(tenant))
	}
	leads, deals := faultsScale(60, 10), faultsScale(15, 10)

	// Leads: created across the instances by concurrent clients.
	var mu sync.Mutex
	var leadIDs []string
	leadTenant := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, leads+2*deals)
	for i := range leads {
		wg.Go(func() {
			tn := i % len(tokens)
			a := faultsSendUntilAccepted(time.Minute, inst[i%3].url, http.MethodPost, "/api/v1/leads",
				fmt.Sprintf(`{"name":"Lead %d %s","company":"Instances Co"}`, i, uuid.NewString()[:8]),
				tokens[tn], "Idempotency-Key", uuid.NewString())
			if a.status != http.StatusCreated {
				errs <- fmt.Errorf("create lead on instance %d: %d %v %s", i%3, a.status, a.err, a.detail)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			leadIDs = append(leadIDs, a.id)
			leadTenant[a.id] = tn
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// Deals: each created on one instance and closed on the next.
	for i := range deals {
		wg.Go(func() {
			lead := leadIDs[i]
			tn := leadTenant[lead]
			d := faultsSendUntilAccepted(time.Minute, inst[i%3].url, http.MethodPost, "/api/v1/deals",
				fmt.Sprintf(`{"lead_id":%q,"title":"Deal %d","amount":150000,"currency":"SAR"}`, lead, i),
				tokens[tn], "Idempotency-Key", uuid.NewString())
			if d.status != http.StatusCreated {
				errs <- fmt.Errorf("create deal on instance %d: %d %v %s", i%3, d.status, d.err, d.detail)
				return
			}
			c := faultsSendUntilAccepted(time.Minute, inst[(i+1)%3].url, http.MethodPost, "/api/v1/deals/"+d.id+"/close", `{"outcome":"won"}`,
				tokens[tn], "Idempotency-Key", uuid.NewString())
			if c.status != http.StatusOK {
				errs <- fmt.Errorf("close deal on instance %d: %d %v %s", (i+1)%3, c.status, c.err, c.detail)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Everything settles...
	faultsEventually(t, 60*time.Second, "every scoring job, run and follow-up to finish", func() bool {
		return faultsCount(t, db, `SELECT count(*) FROM platform.dlq_jobs WHERE state <> 'completed'`) == 0 &&
			faultsCount(t, db, `SELECT count(*) FROM platform.durable_runs WHERE status <> 'completed'`) == 0 &&
			faultsCount(t, db, `SELECT count(*) FROM dealix.deal_followups_sent`) >= 2*deals
	})
	// ...and each effect happened once.
	want := map[string]int{
		`SELECT count(*) FROM dealix.leads WHERE tenant_id = ANY($1::uuid[])`: leads,
		`SELECT count(*) FROM dealix.model_calls`:                             leads,
		`SELECT count(*) FROM dealix.lead_scores`:                             leads,
		`SELECT count(*) FROM platform.dlq_jobs WHERE queue = 'scoring'`:      leads,
		`SELECT count(*) FROM platform.durable_runs`:                          deals,
		`SELECT count(*) FROM dealix.deal_evidence`:                           deals,
		`SELECT count(*) FROM dealix.deal_tasks`:                              deals,
		`SELECT count(*) FROM dealix.deal_followups_sent`:                     2 * deals,
		`SELECT count(*) FROM platform.dlq_jobs WHERE queue = 'followups'`:    2 * deals,
	}
	for sql, n := range want {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, tenants)
		}
		if got := faultsCount(t, db, sql, args...); got != n {
			t.Errorf("%s: %d, want %d", sql, got, n)
		}
	}
	t.Logf("3 instances: %d leads -> %d ledger rows, %d scores; %d deals closed -> %d evidence, %d tasks, %d follow-ups sent",
		leads, faultsCount(t, db, `SELECT count(*) FROM dealix.model_calls`), faultsCount(t, db, `SELECT count(*) FROM dealix.lead_scores`),
		deals, faultsCount(t, db, `SELECT count(*) FROM dealix.deal_evidence`), faultsCount(t, db, `SELECT count(*) FROM dealix.deal_tasks`),
		faultsCount(t, db, `SELECT count(*) FROM dealix.deal_followups_sent`))
}
