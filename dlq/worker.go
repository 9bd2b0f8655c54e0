package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// runner is a started client's work: one loop per queue, the listener, the
// maintenance loop and the completer.
type runner struct {
	c      *Client
	queues map[string]*queueRunner

	stopFetch context.CancelFunc // ends the loops: no new jobs
	loopsCtx  context.Context
	jobsCtx   context.Context    // parent of every handler's context
	stopJobs  context.CancelFunc // cancels in-flight handlers (hard stop)
	hardStop  atomic.Bool

	loops     sync.WaitGroup
	jobs      sync.WaitGroup
	completer *completer
}

type queueRunner struct {
	name string
	cfg  QueueConfig
	wake chan struct{} // a notification or a freed slot; capacity 1

	mu    sync.Mutex
	inUse int // jobs of this queue running in this client
}

// Start begins working the client's queues: fetching, running handlers,
// listening for new jobs, rescuing expired leases and cleaning up. It
// returns at once. Cancelling ctx is a hard stop (see Stop); values of ctx
// reach the handlers' contexts.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runner != nil {
		return ErrStarted
	}
	if len(c.cfg.Queues) == 0 {
		return ErrNoQueues
	}
	r := &runner{c: c, queues: make(map[string]*queueRunner, len(c.cfg.Queues))}
	r.loopsCtx, r.stopFetch = context.WithCancel(ctx)
	r.jobsCtx, r.stopJobs = context.WithCancel(ctx)
	r.completer = newCompleter(r)
	for name, cfg := range c.cfg.Queues {
		r.queues[name] = &queueRunner{name: name, cfg: cfg, wake: make(chan struct{}, 1)}
	}
	for _, q := range r.queues {
		r.goLoop(func() { r.work(q) })
	}
	if !c.cfg.DisableListen {
		r.goLoop(r.listen)
	}
	r.goLoop(r.maintain)
	c.runner = r
	return nil
}

// Stop stops fetching, waits for in-flight jobs to finish and records their
// outcomes. When ctx ends first, in-flight handlers' contexts are cancelled
// and the jobs whose handlers then fail are released — back to available,
// the attempt not counted — for another worker; Stop then returns ctx's
// error. Handlers must honour their context for Stop to return. A stopped
// client can be started again.
func (c *Client) Stop(ctx context.Context) error {
	c.mu.Lock()
	r := c.runner
	c.runner = nil
	c.mu.Unlock()
	if r == nil {
		return nil
	}
	r.stopFetch()
	finished := make(chan struct{})
	go func() { r.jobs.Wait(); close(finished) }()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		r.hardStop.Store(true)
		r.stopJobs()
		<-finished
	}
	r.loops.Wait()
	r.completer.close()
	r.stopJobs()
	return err
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
	for {
		// After a fetch that drained the queue, jobs trickle in: fetch
		// them together a moment later rather than one query (and one
		// commit) each.
		if d := time.Until(cooldownUntil); d > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
		wait := r.c.cfg.PollInterval
		if n := q.fetchSize(); n > 0 {
			jobs, err := r.c.fetch(ctx, q, n)
			if err != nil && ctx.Err() == nil {
				r.c.cfg.Logger.WarnContext(ctx, "dlq: fetch failed", "queue", q.name, "err", err)
				// The database is likely away: try again soon, not only
				// at the next poll.
				failures++
				wait = min(wait, 50*time.Millisecond<<min(failures, 6))
			} else {
				failures = 0
			}
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

func (r *runner) start(q *queueRunner, job *Job) {
	q.mu.Lock()
	q.inUse++
	q.mu.Unlock()
	r.jobs.Add(1)
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
// error wrapping ErrPanic.
func (r *runner) execute(q *queueRunner, job *Job) (err error) {
	ctx, cancel := context.WithTimeout(withJob(r.jobsCtx, job), q.cfg.Timeout)
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
		recordAttempt(ctx, q.name, outcomeCompleted)
		r.completer.add(job)
		return
	}
	var write func(context.Context) error
	var snooze *snoozeError
	switch {
	case r.hardStop.Load() || r.jobsCtx.Err() != nil:
		recordAttempt(ctx, q.name, outcomeReleased)
		log.Info("dlq: job released at shutdown", "queue", q.name, "job", job.ID, "err", err)
		write = func(ctx context.Context) error { return r.c.release(ctx, job) }
	case errors.As(err, &snooze):
		recordAttempt(ctx, q.name, outcomeSnoozed)
		write = func(ctx context.Context) error { return r.c.snooze(ctx, job, snooze.after) }
	default:
		var discard *discardError
		dead := errors.As(err, &discard) || job.Attempt >= job.MaxAttempts
		level, outcome := "retry", outcomeRetried
		if dead {
			level, outcome = "dead", outcomeDead
		}
		recordAttempt(ctx, q.name, outcome)
		log.Warn("dlq: job failed", "queue", q.name, "job", job.ID, "attempt", job.Attempt, "outcome", level, "err", err)
		write = func(ctx context.Context) error { return r.c.fail(ctx, job, err, dead) }
	}
	r.persist(write)
}

// persist retries a write of a job's outcome through database outages. It
// gives up after the lease grace: by then the lease has expired and the
// rescuer owns the job.
func (r *runner) persist(write func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.jobsCtx), r.c.cfg.LeaseGrace)
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

const fetchSQL = `
WITH picked AS (
    SELECT id FROM platform.dlq_jobs
    WHERE state = 'available' AND queue = $1 AND run_at <= $2
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.dlq_jobs j
SET state = 'running', attempt = j.attempt + 1, attempted_at = $2, lease_until = $4
FROM picked WHERE j.id = picked.id
RETURNING j.id, j.tenant_id::text, j.queue, j.kind, j.payload, j.priority, j.attempt, j.max_attempts, j.created_at, j.errors`

// fetch leases up to n available jobs of q.
func (c *Client) fetch(ctx context.Context, q *queueRunner, n int) ([]*Job, error) {
	now := c.cfg.Now()
	rows, err := c.pool.Query(ctx, fetchSQL, q.name, now, n, now.Add(q.cfg.Timeout+c.cfg.LeaseGrace))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var jobs []*Job
	for rows.Next() {
		job := &Job{}
		var payload, history []byte
		if err := rows.Scan(&job.ID, &job.Tenant, &job.Queue, &job.Kind, &payload, &job.Priority,
			&job.Attempt, &job.MaxAttempts, &job.CreatedAt, &history); err != nil {
			return jobs, err
		}
		job.Payload = payload
		// The history is the library's own JSON; a row edited by hand
		// into something else must not stop the job from running.
		_ = json.Unmarshal(history, &job.Errors)
		jobs = append(jobs, job)
	}
	return jobs, rows.Err()
}

const failSQL = `
UPDATE platform.dlq_jobs
SET state = $3, run_at = $4, lease_until = NULL,
    finalized_at = CASE WHEN $3 = 'dead' THEN $4::timestamptz END,
    errors = errors || $5::jsonb
WHERE id = $1 AND attempt = $2 AND state = 'running'`

// fail records a failed attempt: back to available after the backoff, or
// dead. The attempt number fences the write: a worker whose lease was
// rescued and whose job runs again elsewhere does not overwrite it.
func (c *Client) fail(ctx context.Context, job *Job, cause error, dead bool) error {
	now := c.cfg.Now()
	entry := AttemptError{Attempt: job.Attempt, At: now, Error: cause.Error(), Panic: errors.Is(cause, ErrPanic)}
	history, err := json.Marshal([]AttemptError{entry})
	if err != nil {
		return err
	}
	state, runAt := StateDead, now
	if !dead {
		state, runAt = StateAvailable, now.Add(c.cfg.Backoff.Delay(job.Attempt))
	}
	_, err = c.pool.Exec(ctx, failSQL, job.ID, job.Attempt, string(state), runAt, string(history))
	return err
}

const releaseSQL = `
UPDATE platform.dlq_jobs
SET state = 'available', attempt = attempt - 1, run_at = $3, lease_until = NULL
WHERE id = $1 AND attempt = $2 AND state = 'running'`

// release gives a job back without counting the attempt.
func (c *Client) release(ctx context.Context, job *Job) error {
	_, err := c.pool.Exec(ctx, releaseSQL, job.ID, job.Attempt, c.cfg.Now())
	return err
}

// snooze gives a job back to run after d without counting the attempt.
func (c *Client) snooze(ctx context.Context, job *Job, d time.Duration) error {
	_, err := c.pool.Exec(ctx, releaseSQL, job.ID, job.Attempt, c.cfg.Now().Add(d))
	return err
}
