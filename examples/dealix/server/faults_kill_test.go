package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

// Three server processes on one database close deals whose steps are
// slowed; one of them is killed with SIGKILL while it owns a running
// deal-closed run. Its runs' leases are then expired (as the lease would
// on its own, without the wait) and the two survivors finish its work:
// every deal ends with one completed run, one evidence record, one task
// and its two follow-ups sent once.
func TestFaultsKilledInstanceLeasesMove(t *testing.T) {
	bin := buildBinary(t)
	db := pgtest.New(t)
	env := append(dbEnv(t, db), "DEALIX_ADDR=127.0.0.1:0", "DEALIX_DEBUG_ROUTES=true", "DEALIX_LOG_LEVEL=warn",
		"DEALIX_RATE_LIMIT=100000/1m", server.EnvDealsStepDelay+"=300ms")
	var procs []*dealsProc
	for range 3 {
		procs = append(procs, startDealsProc(t, bin, env))
	}
	// Each start makes the demo tenant a new key and revokes the one
	// before: the last one printed serves for all three.
	// (read once here: the banner's reader is done with it).
	key := procs[2].apiKey
	deals := faultsScale(12, 5)

	// Created on one instance, closed on the next, all at once.
	ids := make([]string, deals)
	var wg sync.WaitGroup
	errs := make(chan error, deals)
	for i := range deals {
		wg.Go(func() {
			a, err := procs[i%3].send("POST", "/api/v1/deals", fmt.Sprintf(`{"title":"Kill deal %d","amount":%d,"currency":"SAR"}`, i, 1000+i),
				"Idempotency-Key", uuid.NewString(), "X-API-Key", key)
			if err != nil || a.status != http.StatusCreated {
				errs <- fmt.Errorf("create deal %d: %v %d %s", i, err, a.status, a.body)
				return
			}
			var d struct{ ID string }
			if err := json.Unmarshal(a.body, &d); err != nil {
				errs <- err
				return
			}
			ids[i] = d.ID
			c, err := procs[(i+1)%3].send("POST", "/api/v1/deals/"+d.ID+"/close", `{"outcome":"won"}`, "Idempotency-Key", uuid.NewString(), "X-API-Key", key)
			if err != nil || c.status != http.StatusOK {
				errs <- fmt.Errorf("close deal %d: %v %d %s", i, err, c.status, c.body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The victim: an instance that owns a running run right now.
	ctx := context.Background()
	victim := -1
	var owner string
	faultsEventually(t, 30*time.Second, "an instance to own a running run", func() bool {
		for i, p := range procs {
			pattern := "%-" + strconv.Itoa(p.cmd.Process.Pid) + "-%"
			err := db.System.QueryRow(ctx, `SELECT owner FROM platform.durable_runs
				WHERE status = 'running' AND owner LIKE $1 LIMIT 1`, pattern).Scan(&owner)
			if err == nil {
				victim = i
				return true
			}
		}
		if faultsCount(t, db, `SELECT count(*) FROM platform.durable_runs WHERE status <> 'completed'`) == 0 {
			t.Fatal("every run finished before an instance could be killed in one")
		}
		return false
	})
	procs[victim].kill()
	var killedAt time.Time
	if err := db.System.QueryRow(ctx, `SELECT now()`).Scan(&killedAt); err != nil {
		t.Fatal(err)
	}
	// The dead instance's runs: expire their leases, as time would.
	tag, err := db.System.Exec(ctx, `UPDATE platform.durable_runs SET lease_until = now(), ready_at = now()
		WHERE status = 'running' AND owner = $1`, owner)
	if err != nil {
		t.Fatal(err)
	}
	orphaned := tag.RowsAffected()
	var orphanIDs []string
	rows, err := db.System.Query(ctx, `SELECT id FROM platform.durable_runs WHERE owner = $1`, owner)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		orphanIDs = append(orphanIDs, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if orphaned == 0 {
		t.Fatal("the killed instance owned no running run")
	}

	// The survivors take the runs over and finish every deal. A follow-up
	// job the dead instance had claimed keeps its lease until it expires:
	// jobs claimed before the kill and still running once the runs are
	// done can only be its (a live worker sends a follow-up in
	// milliseconds), so their leases are expired too.
	faultsEventually(t, 60*time.Second, "the survivors to finish every run", func() bool {
		return faultsCount(t, db, `SELECT count(*) FROM platform.durable_runs WHERE status <> 'completed'`) == 0
	})
	time.Sleep(time.Second)
	if _, err := db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET lease_until = now() - interval '1 second'
		WHERE state = 'running' AND attempted_at < $1`, killedAt); err != nil {
		t.Fatal(err)
	}
	faultsEventually(t, 60*time.Second, "every follow-up sent", func() bool {
		return faultsCount(t, db, `SELECT count(*) FROM platform.dlq_jobs WHERE state <> 'completed'`) == 0
	})
	takenOver := faultsCount(t, db, `SELECT count(*) FROM platform.durable_runs WHERE id = ANY($1) AND status = 'completed' AND attempt > 1`, orphanIDs)
	if takenOver != len(orphanIDs) {
		t.Errorf("%d of the dead instance's %d runs completed on a later claim", takenOver, len(orphanIDs))
	}
	for _, id := range ids {
		for sql, want := range map[string]int{
			`SELECT count(*) FROM platform.durable_runs d JOIN dealix.deals x ON d.tenant_id = x.tenant_id AND d.id = x.run_id WHERE x.id = $1 AND d.status = 'completed'`: 1,
			`SELECT count(*) FROM dealix.deal_evidence WHERE deal_id = $1`:       1,
			`SELECT count(*) FROM dealix.deal_tasks WHERE deal_id = $1`:          1,
			`SELECT count(*) FROM dealix.deal_followups_sent WHERE deal_id = $1`: 2,
		} {
			if got := faultsCount(t, db, sql, id); got != want {
				t.Errorf("deal %s: %s = %d, want %d", id, sql, got, want)
			}
		}
	}
	t.Logf("3 processes, %d deals closed; instance %d killed owning %d running runs, all completed by the survivors; %d evidence, %d tasks, %d follow-ups sent",
		deals, victim, orphaned, faultsCount(t, db, `SELECT count(*) FROM dealix.deal_evidence`),
		faultsCount(t, db, `SELECT count(*) FROM dealix.deal_tasks`), faultsCount(t, db, `SELECT count(*) FROM dealix.deal_followups_sent`))
}
