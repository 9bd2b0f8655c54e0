package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// fetchTimeout bounds one fetch. A fetch is never cancelled by a stop: the
// server may have committed the claim by the time a cancellation reaches
// it, and claimed jobs nobody runs would wait for their lease to expire —
// a job on its last attempt would then go dead without having run.
const fetchTimeout = 30 * time.Second

// maxErrorText bounds an error text stored in a job's history (a panic's
// value with its stack fits).
const maxErrorText = 32 << 10

// runner is a started client's work: one loop per queue, the listener, the
// maintenance loop and the completer.
type runner struct {
	c      *Client
	queues map[string]*queueRunner

	loopsCtx   context.Context    // the loops' context
	stopLoops  context.CancelFunc // ends the loops: no new fetch
	jobsCtx    context.Context    // parent of every handler's context
	cancelJobs context.CancelFunc // cancels running handlers (hard stop)
	hard       atomic.Bool        // set by a hard stop: failures are releases

	loops     sync.WaitGroup
	jobs      sync.WaitGroup
	completer *completer

	stopOnce sync.Once
	unwatch  func() bool   // detaches the Start context; read under c.mu
	done     chan struct{} // closed once everything has stopped
}

type queueRunner struct {
	name  string
	cfg   QueueConfig
	wake  chan struct{} // a notification or a freed slot; capacity 1
	attrs attemptAttrs  // the attempts counter's attributes

	mu    sync.Mutex
	inUse int // jobs of this queue running in this client
}

// Start begins working the client's queues: fetching, running handlers,
// listening for new jobs, rescuing expired leases and sweeping finished
// jobs. It returns at once. Values of ctx reach the handlers' contexts;
// cancelling ctx is StopAndCancel.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runner != nil {
		return ErrStarted
	}
	if len(c.cfg.Queues) == 0 {
		return ErrNoQueues
	}
	sweeper, err := NewSweeper(c.db, SweeperConfig{
		Retention: c.cfg.Retention, DeadRetention: c.cfg.DeadRetention,
		Interval: c.cfg.CleanupInterval, BatchPause: c.cfg.CleanupBatchPause, Logger: c.cfg.Logger,
	})
	if err != nil {
		return err
	}
	r := &runner{c: c, queues: make(map[string]*queueRunner, len(c.cfg.Queues)), done: make(chan struct{})}
	base := context.WithoutCancel(ctx)
	r.loopsCtx, r.stopLoops = context.WithCancel(base)
	r.jobsCtx, r.cancelJobs = context.WithCancel(base)
	r.completer = newCompleter(r)
	for name, cfg := range c.cfg.Queues {
		r.queues[name] = &queueRunner{name: name, cfg: cfg, wake: make(chan struct{}, 1), attrs: newAttemptAttrs(name)}
	}
	for _, q := range r.queues {
		r.goLoop(func() { r.work(q) })
	}
	if !c.cfg.DisableListen {
		r.goLoop(r.listen)
	}
	r.goLoop(r.maintain)
	r.goLoop(func() { _ = sweeper.Run(r.loopsCtx) })
	r.unwatch = context.AfterFunc(ctx, func() {
		r.beginStop()
		r.hardStop()
	})
	c.runner = r
	return nil
}

// Stop is the soft stop: it stops fetching, lets the jobs in hand — those
// running and those a fetch in flight returns (a fetch is never cancelled;
// it gives up after 30s) — finish, records their outcomes, and returns nil. When ctx ends first it turns into the hard
// stop (see StopAndCancel), waits for the cancelled handlers to return,
// and returns ctx's error. Handlers must honour their context for Stop to
// return then. A stopped client can be started again.
func (c *Client) Stop(ctx context.Context) error {
	return c.stop(ctx, false)
}

// StopAndCancel is the hard stop: it stops fetching and cancels the
// context of every running handler; the jobs whose handlers then fail are
// released — back to available at once, the attempt not counted — for
// another worker, and a job fetched by a fetch still in flight is released
// without running. It returns nil once every handler has returned and the
// outcomes are recorded, or ctx's error if ctx ends first; what is left
// then finishes in the background and Start returns ErrStarted until it
// has. It may be called while a Stop waits, to cut it short.
func (c *Client) StopAndCancel(ctx context.Context) error {
	return c.stop(ctx, true)
}

func (c *Client) stop(ctx context.Context, hard bool) error {
	c.mu.Lock()
	r := c.runner
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	r.beginStop()
	if hard {
		r.hardStop()
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}
	if !hard {
		r.hardStop()
		<-r.done
	}
	return ctx.Err()
}

// beginStop ends the loops, then — in this order, so no job can start
// after the jobs were awaited and no outcome reaches a closed completer —
// waits for the loops (a fetch in flight completes and its jobs start),
// for the jobs, and for the completer's last writes.
func (r *runner) beginStop() {
	r.stopOnce.Do(func() {
		r.stopLoops()
		go func() {
			r.loops.Wait()
			r.jobs.Wait()
			r.completer.close()
			r.cancelJobs()
			r.c.mu.Lock()
			if r.unwatch != nil {
				r.unwatch()
			}
			if r.c.runner == r {
				r.c.runner = nil
			}
			r.c.mu.Unlock()
			close(r.done)
		}()
	})
}

func (r *runner) hardStop() {
	r.hard.Store(true)
	r.cancelJobs()
}

func (r *runner) goLoop(fn func()) {
	r.loops.Add(1)
	go func() {
		defer r.loops.Done()
		fn()
	}()
}

// wakeQueue tells a queue's loop to look for jobs now.
func (r *runner) wakeQueue(name string) {
	if q, ok := r.queues[name]; ok {
		q.signal()
	}
}

func (r *runner) wakeAll() {
	for _, q := range r.queues {
		q.signal()
	}
}

func (q *queueRunner) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// fetchSize is how many jobs to fetch now: up to FetchBatch free slots,
// but while jobs are running, not fewer than half a batch, so a busy queue
// fetches in batches rather than one query per finished job.
func (q *queueRunner) fetchSize() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := min(q.cfg.Concurrency, q.cfg.FetchBatch)
	n := min(q.cfg.Concurrency-q.inUse, batch)
	if q.inUse > 0 && n < (batch+1)/2 {
		return 0
	}
	return n
}

// work is a queue's loop: fetch as many jobs as there are free slots, run
// them, and wait for a notification, a freed slot or the poll interval.
func (r *runner) work(q *queueRunner) {
	ctx := r.loopsCtx
	poll := time.NewTimer(0)
	defer poll.Stop()
	var failures int
	var cooldownUntil time.Time
	for ctx.Err() == nil {
		// After a fetch that drained the queue, jobs trickle in: fetch
		// them together a moment later rather than one query (and one
		// commit) each. The cooldown is this process's own pacing, so
		// its clock is the right one.
		if d := time.Until(cooldownUntil); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		wait := r.c.cfg.PollInterval
		if n := q.fetchSize(); n > 0 {
			// Detached from the stop: see fetchTimeout.
			fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
			jobs, err := r.c.fetch(fetchCtx, q, n)
			cancel()
			if err != nil {
				r.c.cfg.Logger.WarnContext(ctx, "dlq: fetch failed", "queue", q.name, "err", err)
				// The database is likely away: try again soon, not only
				// at the next poll.
				failures++
				wait = min(wait, 50*time.Millisecond<<min(failures, 6))
			} else {
				failures = 0
			}
			// Jobs in hand run even when the stop came meanwhile.
			for _, job := range jobs {
				r.start(q, job)
			}
			if len(jobs) == n {
				continue // there may be more
			}
			cooldownUntil = time.Now().Add(r.c.cfg.FetchCooldown)
		}
		poll.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-poll.C:
		}
	}
}

// start runs job in a goroutine of its own. It is only called from a
// queue's loop, so every r.jobs.Add happens before the stop waits on them.
func (r *runner) start(q *queueRunner, job *Job) {
	r.jobs.Add(1)
	if r.hard.Load() {
		// A hard stop came while the job was being fetched: hand it back
		// unrun rather than start work that is about to be cancelled.
		go func() {
			defer r.jobs.Done()
			q.attrs.record(context.Background(), outcomeReleased)
			r.persist(func(ctx context.Context) error { return r.c.release(ctx, job, 0) })
		}()
		return
	}
	q.mu.Lock()
	q.inUse++
	q.mu.Unlock()
	go func() {
		defer r.jobs.Done()
		err := r.execute(q, job)
		r.record(q, job, err)
		q.mu.Lock()
		q.inUse--
		q.mu.Unlock()
		q.signal()
	}()
}

// execute runs the handler with the job's timeout, turning a panic into an
// error wrapping ErrPanic. The handler's context carries the job and its
// tenant.
func (r *runner) execute(q *queueRunner, job *Job) (err error) {
	ctx := withJob(r.jobsCtx, job)
	if scoped, err := rls.WithTenant(ctx, job.Tenant); err == nil {
		ctx = scoped
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return q.cfg.Handler.Work(ctx, job)
}

type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("%v: %v\n%s", ErrPanic, e.value, e.stack) }
func (e *panicError) Unwrap() error { return ErrPanic }

// record stores the outcome of one attempt. Success goes through the
// completer in batches; the rest are written one by one.
func (r *runner) record(q *queueRunner, job *Job, err error) {
	log := r.c.cfg.Logger
	ctx := context.WithoutCancel(r.jobsCtx)
	if err == nil {
		q.attrs.record(ctx, outcomeCompleted)
		r.completer.add(job)
		return
	}
	var write func(context.Context) error
	var snooze *snoozeError
	switch {
	case r.hard.Load():
		q.attrs.record(ctx, outcomeReleased)
		log.Info("dlq: job released at shutdown", "queue", q.name, "job", job.ID, "err", err)
		write = func(ctx context.Context) error { return r.c.release(ctx, job, 0) }
	case errors.As(err, &snooze):
		q.attrs.record(ctx, outcomeSnoozed)
		write = func(ctx context.Context) error { return r.c.release(ctx, job, snooze.after) }
	default:
		var discard *discardError
		dead := errors.As(err, &discard) || job.Attempt >= job.MaxAttempts
		level, outcome := "retry", outcomeRetried
		if dead {
			level, outcome = "dead", outcomeDead
		}
		q.attrs.record(ctx, outcome)
		log.Warn("dlq: job failed", "queue", q.name, "job", job.ID, "attempt", job.Attempt, "outcome", level, "err", err)
		write = func(ctx context.Context) error { return r.c.fail(ctx, job, err, dead) }
	}
	r.persist(write)
}

// persist retries a write of a job's outcome through database outages
// and busy moments. It keeps trying for minOutcomeBudget or the lease
// grace, whichever is longer: a job that ended early still holds most of
// its lease, so giving up after the grace alone would lose an outcome the
// lease could still carry (a single-attempt job would then go dead at the
// rescue without a failure), while a write that comes after the rescue is
// refused by the claim fence and does no harm.
func (r *runner) persist(write func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.jobsCtx), max(r.c.cfg.LeaseGrace, minOutcomeBudget))
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		err := write(ctx)
		if err == nil {
			return
		}
		r.c.cfg.Logger.Warn("dlq: recording a job outcome failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			r.c.cfg.Logger.Error("dlq: gave up recording a job outcome; the rescuer will run the job again", "err", err)
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// minOutcomeBudget is the least time persist keeps trying to record an
// outcome.
const minOutcomeBudget = 30 * time.Second

// micros is a duration as the bigint the statements turn into an
// interval ($n::bigint * interval '1 microsecond').
func micros(d time.Duration) int64 { return d.Microseconds() }

// fetchSQL claims jobs: due by the database's clock, leased until the
// database's now() plus the lease, and each claim counted. The picked ids
// reach the UPDATE as an array, so it finds its rows through the primary
// key: joined to a CTE instead, the planner hashes the whole table (a
// sequential scan whose cost grows with every finished job kept).
//
// It goes through the connection's statement cache, whose generic plan
// PostgreSQL keeps after five executions. Chosen while the table is
// nearly empty (workers started before the first jobs), that plan reads
// the ids by a sequential scan, and the connection would keep it until an
// ANALYZE of the table (autovacuum's, a minute or so later), each fetch
// comparing every row kept with every id fetched. Planning each fetch
// afresh avoids that but costs 0.3-0.6 ms a fetch, most of a job's cost at
// the default batch of a few jobs. So the statement is renewed instead
// each time the highest job id the client has fetched doubles (see
// fetchStatement): ids come from a sequence, so a plan chosen on a small
// table lasts at most until the jobs inserted since have doubled, and a
// table that holds many jobs gets a plan of its size. Each renewal costs
// one prepare per connection, about forty in the life of a database.
const fetchSQL = `
UPDATE platform.dlq_jobs j
SET state = 'running', attempt = j.attempt + 1, claims = j.claims + 1, attempted_at = now(),
    lease_until = now() + $3::bigint * interval '1 microsecond'
WHERE j.id = ANY(ARRAY(
    SELECT id FROM platform.dlq_jobs
    WHERE state = 'available' AND queue = $1 AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED))
RETURNING j.id, j.tenant_id::text, j.queue, j.kind, j.payload, j.priority, j.attempt, j.max_attempts,
          j.created_at, j.errors, j.claims`

// fetchStatements are fetchSQL under one comment per bit length of the
// highest job id fetched: each is a statement of its own to the statement
// cache, so a new one starts with plans of the table as it is then.
var fetchStatements = func() (s [65]string) {
	for i := range s {
		s[i] = fetchSQL + "\n-- plan " + strconv.Itoa(i)
	}
	return s
}()

// fetchStatement is the fetch statement for the highest job id fetched
// so far.
func (c *Client) fetchStatement() string {
	return fetchStatements[bits.Len64(uint64(max(c.maxFetchedID.Load(), 0)))]
}

// fetch leases up to n available jobs of q.
func (c *Client) fetch(ctx context.Context, q *queueRunner, n int) ([]*Job, error) {
	rows, err := c.db.Query(ctx, c.fetchStatement(), q.name, n, micros(q.cfg.Timeout+c.cfg.LeaseGrace))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*Job
	for rows.Next() {
		job := &Job{}
		var payload, history []byte
		if err := rows.Scan(&job.ID, &job.Tenant, &job.Queue, &job.Kind, &payload, &job.Priority,
			&job.Attempt, &job.MaxAttempts, &job.CreatedAt, &history, &job.claims); err != nil {
			return jobs, err
		}
		job.Payload = payload
		// The history is the library's own JSON; a row edited by hand
		// into something else must not stop the job from running.
		_ = json.Unmarshal(history, &job.Errors)
		jobs = append(jobs, job)
	}
	if len(jobs) > 0 {
		var top int64
		for _, job := range jobs {
			top = max(top, job.ID)
		}
		for {
			seen := c.maxFetchedID.Load()
			if top <= seen || c.maxFetchedID.CompareAndSwap(seen, top) {
				break
			}
		}
	}
	return jobs, rows.Err()
}

// failSQL records a failed attempt. The claim count fences it: a worker
// whose lease was rescued, and whose job runs again elsewhere (after a
// re-drive, even under the same attempt number), changes nothing. It
// names the job's tenant beside its id, so a database distributed by
// tenant_id routes it to the tenant's shard.
const failSQL = `
UPDATE platform.dlq_jobs
SET state = $3, lease_until = NULL,
    run_at = now() + $4::bigint * interval '1 microsecond',
    finalized_at = CASE WHEN $3 = 'dead' THEN now() END,
    errors = errors || jsonb_build_array(
        jsonb_build_object('attempt', attempt, 'at', now(), 'error', $5::text)
        || CASE WHEN $6::bool THEN jsonb_build_object('panic', true) ELSE '{}'::jsonb END)
WHERE id = $1 AND claims = $2 AND state = 'running' AND tenant_id = $7::uuid`

// fail records a failed attempt: back to available after the backoff, or
// dead. The error text is made storable (NUL and invalid UTF-8 replaced)
// so that the write cannot fail on it and leave the rescuer to record a
// lost lease instead of the real reason.
func (c *Client) fail(ctx context.Context, job *Job, cause error, dead bool) error {
	state, delay := StateDead, time.Duration(0)
	if !dead {
		state, delay = StateAvailable, c.cfg.Backoff.Delay(job.Attempt)
	}
	_, err := c.db.Exec(ctx, failSQL, job.ID, job.claims, string(state), micros(delay),
		pgtext.Clean(cause.Error(), maxErrorText), errors.Is(cause, ErrPanic), job.Tenant)
	return err
}

// releaseSQL is fenced and routed like failSQL.
const releaseSQL = `
UPDATE platform.dlq_jobs
SET state = 'available', attempt = attempt - 1, lease_until = NULL,
    run_at = now() + $3::bigint * interval '1 microsecond'
WHERE id = $1 AND claims = $2 AND state = 'running' AND tenant_id = $4::uuid`

// release gives a job back to run after d without counting the attempt
// (a snooze, or a hard stop with d = 0).
func (c *Client) release(ctx context.Context, job *Job, d time.Duration) error {
	_, err := c.db.Exec(ctx, releaseSQL, job.ID, job.claims, micros(d), job.Tenant)
	return err
}
