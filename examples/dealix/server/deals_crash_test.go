package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/deals"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

// lockedBuffer is a bytes.Buffer the child's stderr copier and the test
// may touch at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// dealsProc is one run of the server's binary.
type dealsProc struct {
	t            *testing.T
	cmd          *exec.Cmd
	base, apiKey string
	stderr       *lockedBuffer
	exited       chan struct{}
}

// startDealsProc starts the binary with env and waits for its banner.
func startDealsProc(t *testing.T, bin string, env []string) *dealsProc {
	t.Helper()
	p := &dealsProc{t: t, cmd: exec.Command(bin), stderr: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = childEnv(env...)
	p.cmd.Stderr = p.stderr
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)
	ready := make(chan struct{})
	go func() {
		defer r.Close()
		announced := false
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, "Dealix reference server listening on "); ok {
				p.base = rest
			}
			if rest, ok := strings.CutPrefix(line, "Demo API key: "); ok {
				p.apiKey = rest
			}
			if p.base != "" && p.apiKey != "" && !announced {
				announced = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("the server exited before its banner; stderr:\n%s", p.stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("the server printed no banner; stderr:\n%s", p.stderr.String())
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *dealsProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// diedWithin reports whether the process exits on its own within d.
func (p *dealsProc) diedWithin(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

func (p *dealsProc) dead() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

type dealsAnswer struct {
	status   int
	body     []byte
	replayed bool
}

var crashClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// send makes one request to p; an error means no answer arrived (the
// process died under it, or was dead).
func (p *dealsProc) send(method, path, body string, headers ...string) (dealsAnswer, error) {
	req, err := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if err != nil {
		return dealsAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.apiKey)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := crashClient.Do(req)
	if err != nil {
		return dealsAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return dealsAnswer{}, err
	}
	return dealsAnswer{resp.StatusCode, b, resp.Header.Get("Idempotent-Replayed") == "true"}, nil
}

// crashDeal is one deal of the crash test and what its close has seen.
type crashDeal struct {
	id, outcome, body, key string
	mode                   string // the knob of the round that first sent the close
	traceID, correlation   string
	attempts               int
	answer                 *dealsAnswer // the first 200, the one every retry must repeat
	abandoned              bool         // its close died before committing and is never retried
}

func (d *crashDeal) headers() []string {
	return []string{"Idempotency-Key", d.key, "X-Correlation-ID", d.correlation,
		"traceparent", "00-" + d.traceID + "-00f067aa0ba902b7-01"}
}

// tryClose sends d's close to p once and records a 200. Any other answer
// (409 while a dead holder's lock is released, 503) or none leaves it
// pending.
func (d *crashDeal) tryClose(t *testing.T, p *dealsProc) {
	t.Helper()
	d.attempts++
	a, err := p.send("POST", "/api/v1/deals/"+d.id+"/close", d.body, d.headers()...)
	if err != nil || a.status != http.StatusOK {
		return
	}
	if d.answer != nil {
		if !bytes.Equal(a.body, d.answer.body) || !a.replayed {
			t.Errorf("deal %s: a retry got another answer (replayed %v):\n%s\nfirst:\n%s", d.id, a.replayed, a.body, d.answer.body)
		}
		return
	}
	d.answer = &a
}

// expireDeadLeases ends the leases the killed process held, as their
// expiry would: no process holds them any more (the only server is dead),
// so this is waiting out the lease without the wait. The workers' fencing
// (the attempt a claim bumps) is what keeps a run from advancing twice,
// and it is untouched.
func expireDeadLeases(t *testing.T, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	// A backend of the killed process may still be running its last
	// statement (a claim, say), or not yet have read it from its socket,
	// and commit it after the process is gone. Connected directly, such a
	// backend exits once it has done what it read and finds its client
	// gone: wait until none is left. A backend counted idle may still have
	// a statement waiting in its socket, so idleness is not enough there
	// (a claim committed after the expiry below once left four jobs
	// leased for a minute on a loaded machine). Through PgBouncer, whose
	// server connections outlive their clients, wait until none is busy.
	busy := `true`
	if throughPgBouncer {
		busy = `state <> 'idle'`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var live int
		if err := db.Admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2 AND `+busy,
			db.Name, server.ApplicationName).Scan(&live); err != nil {
			t.Fatal(err)
		}
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends of the killed server still there or busy after 10 s", live)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := db.System.Exec(ctx, `UPDATE platform.durable_runs SET lease_until = now(), ready_at = now()
		WHERE status = 'running'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET lease_until = now() - interval '1 second'
		WHERE state = 'running'`); err != nil {
		t.Fatal(err)
	}
}

// TestDealCloseSurvivesKills closes deals while a real server process is
// killed with SIGKILL at every point that matters: in the close request
// before its transaction, inside it, after its commit before the answer
// leaves, inside and after each step of the deal-closed run, inside the
// follow-up job, and at random moments with slowed steps. Every killed
// close is retried with its Idempotency-Key on the next process, over the
// same database. At the end every closed deal has exactly one run, one
// evidence record, one follow-up task and each follow-up message sent
// once; every retry got the stored answer; no deal is closed without its
// run and no run exists for an open deal.
//
// DEALIX_CRASH_ROUNDS sets the number of rounds (default 36: each point
// three times).
func TestDealCloseSurvivesKills(t *testing.T) {
	t.Parallel()
	rounds := 36
	if v := os.Getenv("DEALIX_CRASH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("DEALIX_CRASH_ROUNDS=%q: want a positive number", v)
		}
		rounds = n
	}
	bin := buildBinary(t)
	db := pgtest.New(t)
	base := append(dbEnv(t, db), "DEALIX_ADDR=127.0.0.1:0", "DEALIX_DEBUG_ROUTES=true", "DEALIX_LOG_LEVEL=warn")
	withKnobs := func(crashAt string, delay time.Duration) []string {
		env := append([]string{}, base...)
		if crashAt != "" {
			env = append(env, server.EnvDealsCrashAt+"="+crashAt)
		}
		if delay > 0 {
			env = append(env, server.EnvDealsStepDelay+"="+delay.String())
		}
		return env
	}
	const random = "random"
	// The close-path points are spread out, so a close they killed is
	// mostly retried under a knob that lets it through.
	modes := []string{
		deals.CrashCloseStart, deals.StepCrashPoint(deals.StepEvidence), random,
		deals.CrashCloseInTx, deals.AfterStepCrashPoint(deals.StepEvidence), deals.StepCrashPoint(deals.StepTask),
		deals.CrashCloseCommitted, deals.AfterStepCrashPoint(deals.StepTask), random,
		deals.StepCrashPoint(deals.StepFollowups), deals.CrashFollowupSent, deals.AfterStepCrashPoint(deals.StepFollowups),
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))

	// The deals, created up front on a server whose knobs are ignored:
	// without debug routes, fault injection is off.
	all := make([]*crashDeal, rounds)
	p := startDealsProc(t, bin, append(dbEnv(t, db), "DEALIX_ADDR=127.0.0.1:0", "DEALIX_LOG_LEVEL=warn",
		server.EnvDealsCrashAt+"="+deals.CrashCloseStart+","+deals.StepCrashPoint(deals.StepEvidence)))
	for i := range all {
		d := &crashDeal{key: fmt.Sprintf("close-%03d", i), outcome: "won", body: `{"outcome":"won"}`,
			traceID: fmt.Sprintf("%032x", 0xdea1000+i), correlation: fmt.Sprintf("crash-close-%03d", i)}
		if i%3 == 2 {
			d.outcome, d.body = "lost", `{"outcome":"lost","reason":"chose a competitor"}`
		}
		a, err := p.send("POST", "/api/v1/deals", fmt.Sprintf(`{"title":"Crash deal %d","amount":%d,"currency":"SAR","owner":"owner-%d"}`, i, 1000+i, i),
			"Idempotency-Key", fmt.Sprintf("create-%03d", i))
		if err != nil || a.status != http.StatusCreated {
			t.Fatalf("create deal %d: %v %d %s", i, err, a.status, a.body)
		}
		var created struct{ ID string }
		if err := json.Unmarshal(a.body, &created); err != nil {
			t.Fatal(err)
		}
		d.id = created.ID
		all[i] = d
	}
	if !strings.Contains(p.stderr.String(), "debug knobs ignored") {
		t.Errorf("the ignored knobs were not reported; stderr:\n%s", p.stderr.String())
	}
	// A close on it neither dies at close:start nor in its run's step.
	spare := &crashDeal{key: "close-spare", body: `{"outcome":"won"}`, traceID: fmt.Sprintf("%032x", 0xdea0fff), correlation: "crash-close-spare"}
	a, err := p.send("POST", "/api/v1/deals", `{"title":"Spare","amount":1,"currency":"SAR"}`, "Idempotency-Key", "create-spare")
	if err != nil || a.status != http.StatusCreated {
		t.Fatalf("create the spare deal: %v %d %s", err, a.status, a.body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(a.body, &created); err != nil {
		t.Fatal(err)
	}
	spare.id = created.ID
	spare.tryClose(t, p)
	if spare.answer == nil {
		t.Fatalf("the close died with the knobs off; stderr:\n%s", p.stderr.String())
	}
	for {
		var status string
		if err := db.System.QueryRow(context.Background(), `SELECT status FROM platform.durable_runs WHERE id = $1`,
			deals.RunID(spare.id)).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status == "completed" {
			break
		}
		if p.dead() {
			t.Fatalf("the server died with the knobs off; stderr:\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()

	kills := map[string]int{}
	for i, d := range all {
		mode := modes[i%len(modes)]
		var delay time.Duration
		crashAt := mode
		if mode == random {
			crashAt, delay = "", 30*time.Millisecond
		}
		p := startDealsProc(t, bin, withKnobs(crashAt, delay))
		if mode == random {
			// Killed from outside at a random moment: before, during or
			// after the close, or inside a step of a run.
			after := time.Duration(rng.IntN(1500)) * time.Millisecond
			go func() {
				time.Sleep(after)
				p.kill()
			}()
		}
		d.tryClose(t, p)
		// A close the knob killed before it could commit is, every second
		// time, never retried: its deal must stay open and without a run.
		d.mode = mode
		if d.answer == nil && i >= len(modes) && (mode == deals.CrashCloseStart || mode == deals.CrashCloseInTx) &&
			p.diedWithin(5*time.Second) {
			d.abandoned = true
		}
		// Then the closes earlier processes died under.
		for _, old := range all[:i] {
			if p.dead() {
				break
			}
			if old.answer == nil && !old.abandoned {
				old.tryClose(t, p)
			}
		}
		// Give the knob its moment (a step or a job runs after the close
		// answered), then kill whatever is left.
		if mode != random && p.diedWithin(5*time.Second) {
			kills[mode]++
		}
		p.kill()
		expireDeadLeases(t, db)
	}

	// A server without knobs settles everything.
	p = startDealsProc(t, bin, base)
	deadline := time.Now().Add(40 * time.Second)
	for _, d := range all {
		for !d.abandoned && d.answer == nil {
			if time.Now().After(deadline) {
				t.Fatalf("deal %s: its close never answered 200 after %d attempts; stderr:\n%s", d.id, d.attempts, p.stderr.String())
			}
			d.tryClose(t, p)
			if d.answer == nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	// Every close, retried once more, gets its stored answer.
	for _, d := range all {
		if !d.abandoned {
			d.tryClose(t, p)
		}
	}
	ctx := context.Background()
	// A follow-up job whose worker was killed under it on every attempt
	// (the processes of the rounds live a fraction of a second) is
	// dead-lettered, as a poison job would be; the operator's re-drive
	// then runs it, and its message must still be sent once.
	ops, err := dlq.NewClient(db.System, dlq.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var redriven int64
	for {
		n, err := ops.RedriveWhere(ctx, dlq.Filter{Queue: server.QueueFollowups})
		if err != nil {
			t.Fatal(err)
		}
		redriven += n
		var unfinished int
		if err := db.System.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM platform.durable_runs WHERE status <> 'completed') +
			(SELECT count(*) FROM platform.dlq_jobs WHERE queue = 'followups' AND state <> 'completed')`).Scan(&unfinished); err != nil {
			t.Fatal(err)
		}
		if unfinished == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs or follow-up jobs unfinished:\n%s\nstderr:\n%s", unfinished, unfinishedWork(t, db), p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	closed, abandoned, resent := 0, 0, 0
	for _, d := range all {
		var status string
		var closedAt *time.Time
		var runID *string
		var runs, evidence, tasks, sent, jobs, repeated, matching int
		err := db.System.QueryRow(ctx, `SELECT d.status, d.closed_at, d.run_id,
			(SELECT count(*) FROM platform.durable_runs r WHERE r.tenant_id = d.tenant_id AND r.id = $2),
			(SELECT count(*) FROM dealix.deal_evidence e WHERE e.tenant_id = d.tenant_id AND e.deal_id = d.id),
			(SELECT count(*) FROM dealix.deal_tasks k WHERE k.tenant_id = d.tenant_id AND k.deal_id = d.id),
			(SELECT count(*) FROM dealix.deal_followups_sent s WHERE s.tenant_id = d.tenant_id AND s.deal_id = d.id),
			(SELECT count(*) FROM platform.dlq_jobs j WHERE j.tenant_id = d.tenant_id AND j.queue = 'followups'
				AND j.payload->>'deal_id' = d.id::text),
			(SELECT count(*) FROM dealix.deal_followups_sent s WHERE s.tenant_id = d.tenant_id AND s.deal_id = d.id AND s.repeats > 0),
			(SELECT count(*) FROM dealix.deal_evidence e WHERE e.tenant_id = d.tenant_id AND e.deal_id = d.id
				AND e.closed_at = d.closed_at AND e.trace_id = $3 AND e.correlation_id = $4 AND e.outcome = d.status
				AND e.amount = d.amount AND e.closed_by = d.closed_by)
			FROM dealix.deals d WHERE d.id = $1`, d.id, deals.RunID(d.id), d.traceID, d.correlation).
			Scan(&status, &closedAt, &runID, &runs, &evidence, &tasks, &sent, &jobs, &repeated, &matching)
		if err != nil {
			t.Fatal(err)
		}
		if d.abandoned {
			abandoned++
			if status != "open" || runID != nil || runs != 0 || evidence != 0 || tasks != 0 || jobs != 0 {
				t.Errorf("deal %s, whose close died uncommitted: status %s, run %v, %d runs, %d evidence, %d tasks, %d jobs",
					d.id, status, runID, runs, evidence, tasks, jobs)
			}
			var keys int
			if err := db.System.QueryRow(ctx, `SELECT count(*) FROM platform.idempotency_keys WHERE key = $1`, d.key).Scan(&keys); err != nil {
				t.Fatal(err)
			}
			if keys != 0 {
				t.Errorf("deal %s: the uncommitted close left its idempotency key", d.id)
			}
			continue
		}
		closed++
		wantMessages := 2
		if d.outcome == "lost" {
			wantMessages = 1
		}
		if status != d.outcome || runID == nil || *runID != deals.RunID(d.id) || runs != 1 ||
			evidence != 1 || tasks != 1 || sent != wantMessages || jobs != wantMessages || matching != 1 {
			t.Errorf("deal %s (%s): status %s, run %v, %d runs, %d evidence (%d matching the close), %d tasks, %d of %d messages sent by %d jobs",
				d.id, d.outcome, status, runID, runs, evidence, matching, tasks, sent, wantMessages, jobs)
		}
		var answered struct {
			Status   string    `json:"status"`
			RunID    string    `json:"run_id"`
			ClosedAt time.Time `json:"closed_at"`
		}
		if err := json.Unmarshal(d.answer.body, &answered); err != nil {
			t.Fatal(err)
		}
		if answered.Status != d.outcome || answered.RunID != deals.RunID(d.id) || closedAt == nil || !answered.ClosedAt.Equal(*closedAt) {
			t.Errorf("deal %s: the answer %s does not describe the committed close (closed at %v)", d.id, d.answer.body, closedAt)
		}
		switch d.mode {
		case deals.CrashCloseCommitted:
			// The first close committed and its answer was lost: the
			// retry got the stored one.
			if !d.answer.replayed || d.attempts < 2 {
				t.Errorf("deal %s: closed under %s, yet its first answer came from a run of the handler (attempt %d of %d)",
					d.id, d.mode, d.attempts, d.attempts)
			}
		case deals.CrashCloseStart, deals.CrashCloseInTx:
			if d.attempts < 2 {
				t.Errorf("deal %s: closed under %s in one attempt", d.id, d.mode)
			}
		}
		resent += repeated
	}
	var runsTotal int
	if err := db.System.QueryRow(ctx, `SELECT count(*) FROM platform.durable_runs`).Scan(&runsTotal); err != nil {
		t.Fatal(err)
	}
	if runsTotal != closed+1 { // the spare deal's run too
		t.Errorf("%d runs for %d closed deals", runsTotal, closed+1)
	}
	// resent counts messages whose job ran again after a crash and found
	// the message already sent.
	t.Logf("%d rounds: %d deals closed, %d closes abandoned uncommitted, %d follow-up jobs ran again without resending, %d re-driven from the dead letters; kills by knob: %v",
		rounds, closed, abandoned, resent, redriven, kills)
	if rounds >= 2*len(modes) && abandoned == 0 {
		t.Error("no close was abandoned uncommitted: the open-deal half of the test did not run")
	}
	if len(kills) < len(modes)-2 {
		t.Errorf("only %d of the %d crash points killed the process: %v", len(kills), len(modes)-2, kills)
	}
}

// unfinishedWork describes the runs and follow-up jobs not completed, for
// a failure message.
func unfinishedWork(t *testing.T, db *pgtest.DB) string {
	t.Helper()
	rows, err := db.System.Query(context.Background(), `
		SELECT format('run %s: %s attempt %s ready_at %s lease_until %s now %s error %s',
			id, status, attempt, ready_at, lease_until, now(), error)
		FROM platform.durable_runs WHERE status <> 'completed'
		UNION ALL
		SELECT format('job %s: %s attempt %s of %s run_at %s lease_until %s now %s errors %s',
			id, state, attempt, max_attempts, run_at, lease_until, now(), errors)
		FROM platform.dlq_jobs WHERE queue = 'followups' AND state <> 'completed'`)
	if err != nil {
		return err.Error()
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err.Error()
	}
	return strings.Join(lines, "\n")
}
