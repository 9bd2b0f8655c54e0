package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dealix/platform/internal/rls"
)

// Run executes runs until it is stopped: it claims pending runs, runs
// whose wake-up time or signal deadline came, runs that were signalled,
// and running runs whose lease expired (a crashed or stalled worker's), at
// most Concurrency at a time, and resumes each from its last checkpoint.
// Several runtimes (processes) may call Run on the same database: a run is
// only ever executed by the worker holding its lease.
//
// Stop ends Run softly: the steps running at that moment finish and are
// checkpointed, then their runs are parked (their leases handed back, so
// any runtime may resume them at once). StopAndCancel, or cancelling ctx,
// ends it hard: the running steps' contexts are cancelled (with cause
// ErrStopped after StopAndCancel), nothing more is recorded for them, and
// their leases are handed back too. Either way Run returns nil once every
// run it executed has been parked or finished, and may be called again.
func (rt *Runtime) Run(ctx context.Context) error {
	if rt.cfg.System == nil {
		return ErrNoSystemPool
	}
	pool := newWorkerPool(ctx, rt.cfg.Concurrency)
	rt.workMu.Lock()
	if rt.pool != nil {
		rt.workMu.Unlock()
		return ErrAlreadyRunning
	}
	rt.pool = pool
	rt.workMu.Unlock()
	defer func() {
		rt.workMu.Lock()
		pool.closed = true // no more local starts join the pool
		rt.workMu.Unlock()
		pool.wg.Wait()
		pool.cancel(nil)
		rt.workMu.Lock()
		rt.pool = nil
		rt.workMu.Unlock()
		close(pool.done)
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-pool.ctx.Done():
			return nil
		case <-pool.soft:
			return nil
		case <-timer.C:
		case <-rt.poke:
		}
		if pool.stopping() { // the select may have picked another ready case
			return nil
		}
		claiming := make(chan struct{})
		pool.claiming.Store(&claiming)
		free := pool.reserve(rt.cfg.Concurrency)
		claimed := 0
		if free > 0 {
			// Cleared before the claim, so that a wake during it counts.
			rt.backlog.Store(false)
			var err error
			claimed, err = rt.claimAndExecute(pool, free)
			if claimed == free || err != nil {
				rt.backlog.Store(true) // there may be more
			}
			if err != nil && !pool.stopping() {
				rt.cfg.Logger.ErrorContext(ctx, "durable: claim runs", "error", err)
			}
			pool.unreserve(free - claimed)
		}
		pool.claiming.Store(nil)
		close(claiming)
		if claimed == free && free > 0 {
			// There may be more: look again as soon as a slot frees.
			timer.Reset(0)
			continue
		}
		timer.Reset(rt.cfg.PollInterval)
	}
}

// Stop stops Run softly: no more runs are claimed, the steps running now
// finish and are checkpointed, and each run is then parked at its next
// step, its lease handed back so that any runtime resumes it at once. A
// step waiting to be retried is not tried again here. Stop returns nil
// once Run has returned, or ctx's error when ctx is done first (the runs
// go on; call StopAndCancel to cut them short). Without an active Run it
// returns nil at once.
func (rt *Runtime) Stop(ctx context.Context) error {
	return rt.stop(ctx, false)
}

// StopAndCancel stops Run hard: no more runs are claimed and the running
// steps' contexts are cancelled with cause ErrStopped; nothing more is
// recorded for those runs and their leases are handed back. It returns nil
// once Run has returned, or ctx's error when ctx is done first.
func (rt *Runtime) StopAndCancel(ctx context.Context) error {
	return rt.stop(ctx, true)
}

func (rt *Runtime) stop(ctx context.Context, hard bool) error {
	rt.workMu.Lock()
	pool := rt.pool
	rt.workMu.Unlock()
	if pool == nil {
		return nil
	}
	pool.softOnce.Do(func() { close(pool.soft) })
	if hard {
		pool.cancel(ErrStopped)
	}
	select {
	case <-pool.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// workerPool holds the execution slots of an active Run.
type workerPool struct {
	// ctx is the runs' parent: cancelled by a hard stop.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// soft is closed by a soft stop (and by a hard one).
	soft     chan struct{}
	softOnce sync.Once
	done     chan struct{} // closed once Run returned
	closed   bool          // under Runtime.workMu: Run is waiting for its runs
	slots    chan struct{}
	// claiming is closed once the claim in progress, which holds the
	// slots it may fill, has given back those it did not fill.
	claiming atomic.Pointer[chan struct{}]
	wg       sync.WaitGroup
}

func newWorkerPool(ctx context.Context, concurrency int) *workerPool {
	ctx, cancel := context.WithCancelCause(ctx)
	return &workerPool{ctx: ctx, cancel: cancel, soft: make(chan struct{}), done: make(chan struct{}),
		slots: make(chan struct{}, concurrency)}
}

// stopping reports whether a soft or hard stop began.
func (p *workerPool) stopping() bool {
	select {
	case <-p.soft:
		return true
	default:
		return p.ctx.Err() != nil
	}
}

// reserve takes up to n free slots without waiting.
func (p *workerPool) reserve(n int) int {
	for i := range n {
		select {
		case p.slots <- struct{}{}:
		default:
			return i
		}
	}
	return n
}

func (p *workerPool) unreserve(n int) {
	for range n {
		<-p.slots
	}
}

// spawn executes c in a reserved slot.
func (p *workerPool) spawn(rt *Runtime, c claimed) {
	key := runKey(c.tenant, c.id)
	rt.waitMu.Lock()
	rt.active[key] = true
	rt.waitMu.Unlock()
	go func() {
		defer p.wg.Done()
		final := rt.execute(p, c)
		// The slot is free before the run's Wait calls wake, so that a
		// caller starting its next run at once finds it free.
		p.unreserve(1)
		rt.notifyEnded(key, final)
		if rt.backlog.Load() {
			rt.wake() // runs may be waiting for this slot
		}
	}()
}

// cancelReservation gives back a slot reserveLocal took.
func (p *workerPool) cancelReservation() {
	p.unreserve(1)
	p.wg.Done()
}

// reserveLocal reserves a slot of the active Run for a run started in this
// process, or returns nil. When a claim in progress holds the free slots,
// it waits for the claim to give back those it did not fill (one round
// trip), rather than leave the run to the next poll.
func (rt *Runtime) reserveLocal(ctx context.Context) *workerPool {
	if pool := rt.tryReserveLocal(); pool != nil {
		return pool
	}
	rt.workMu.Lock()
	pool := rt.pool
	rt.workMu.Unlock()
	if pool == nil {
		return nil
	}
	claiming := pool.claiming.Load()
	if claiming == nil {
		return nil
	}
	select {
	case <-*claiming:
		return rt.tryReserveLocal()
	case <-ctx.Done():
		return nil
	}
}

func (rt *Runtime) tryReserveLocal() *workerPool {
	rt.workMu.Lock()
	defer rt.workMu.Unlock()
	if rt.pool == nil || rt.pool.closed || rt.pool.stopping() || rt.pool.reserve(1) == 0 {
		return nil
	}
	// Added under workMu, so never after Run began waiting for its runs.
	rt.pool.wg.Add(1)
	return rt.pool
}

// claimed is a run a worker just claimed.
type claimed struct {
	tenant, id, workflow string
	input                json.RawMessage
	attempt              int64
	waitSeq              *int
	wakeAt               *time.Time
	now                  time.Time // the database's clock at the claim
	createdAt            time.Time
}

// Leases and due times are compared and computed with the database's
// clock, never the process's.
const claimSQL = `
WITH due AS (
    SELECT tenant_id, id FROM platform.durable_runs
    WHERE ready_at <= now() AND status IN ('pending', 'running', 'sleeping', 'waiting') AND workflow = ANY($1)
    ORDER BY ready_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.durable_runs r
SET status = 'running', owner = $3, attempt = r.attempt + 1,
    lease_until = now() + $4::bigint * interval '1 microsecond',
    ready_at = now() + $4::bigint * interval '1 microsecond', updated_at = now()
FROM due WHERE r.tenant_id = due.tenant_id AND r.id = due.id
RETURNING r.tenant_id::text, r.id, r.workflow, r.input, r.attempt, r.wait_seq, r.wake_at, now(), r.created_at`

// claimTimeout bounds a claim query, which no stop cancels.
const claimTimeout = 10 * time.Second

// claimAndExecute claims up to limit runs, for which slots are reserved,
// and executes each in its own goroutine.
func (rt *Runtime) claimAndExecute(pool *workerPool, limit int) (int, error) {
	names := rt.workflowNames()
	if len(names) == 0 {
		return 0, nil
	}
	// A claim cancelled half-way may still commit on the server, leaving
	// runs claimed by nobody until their lease expires: it is detached
	// from the stop and bounded by its own timeout instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(pool.ctx), claimTimeout)
	defer cancel()
	if pool.stopping() {
		return 0, nil
	}
	rows, err := rt.cfg.System.Query(ctx, claimSQL, names, limit, rt.cfg.WorkerID, micros(rt.cfg.Lease))
	if err != nil {
		return 0, err
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := row.Scan(&c.tenant, &c.id, &c.workflow, &c.input, &c.attempt, &c.waitSeq, &c.wakeAt, &c.now, &c.createdAt)
		return c, err
	})
	if err != nil {
		return 0, err
	}
	if pool.stopping() {
		// Stopped while claiming: hand the runs straight back.
		for _, c := range runs {
			rt.release(ctx, c.tenant, c.id, c.attempt)
		}
		return 0, nil
	}
	rt.workMu.Lock()
	pool.wg.Add(len(runs))
	rt.workMu.Unlock()
	for _, c := range runs {
		pool.spawn(rt, c)
	}
	return len(runs), nil
}

// execute runs one claimed run to its end, its parking, its stop or the
// loss of its lease. It returns the run as its end stored it, or nil when
// the run did not end here.
func (rt *Runtime) execute(pool *workerPool, c claimed) *Run {
	parent := pool.ctx
	ctx, span := rt.cfg.tracer().Start(parent, "durable.run "+c.workflow)
	if span.IsRecording() { // not built for the spans nobody records
		span.SetAttributes(
			attribute.String("durable.workflow", c.workflow),
			attribute.String("durable.run_id", c.id),
			attribute.String("durable.tenant", c.tenant),
			attribute.Int64("durable.attempt", c.attempt),
		)
	}
	defer span.End()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	rs := &runState{rt: rt, tenant: c.tenant, id: c.id, workflow: c.workflow, attempt: c.attempt,
		claimedAt: c.now, input: c.input, createdAt: c.createdAt, cancel: cancel, soft: pool.soft}
	if c.waitSeq != nil && c.wakeAt != nil {
		rs.waitSeq, rs.waitDeadline = *c.waitSeq, *c.wakeAt
	}
	// The workflow and its steps see the run's tenant, as a request
	// handler sees its caller's.
	ctx, err := rls.WithTenant(ctx, c.tenant)
	var steps []StepRecord
	if err == nil && c.attempt > 1 { // a first claim has nothing recorded yet
		steps, err = rt.loadSteps(ctx, c.tenant, c.id)
	}
	if err != nil {
		if ctx.Err() == nil {
			rt.cfg.Logger.ErrorContext(ctx, "durable: load checkpoints", "run", c.id, "error", err)
		}
		rt.release(parent, rs.tenant, rs.id, rs.attempt)
		return nil
	}
	rs.recorded = make(map[int]StepRecord, len(steps))
	for _, s := range steps {
		rs.recorded[s.Seq] = s
	}

	stopHeartbeat := rt.heartbeat(ctx, rs)
	output, runErr := rt.callWorkflow(context.WithValue(ctx, stateKey{}, rs), rs, c)
	stopHeartbeat()
	return rt.settle(parent, ctx, span, rs, output, runErr)
}

// callWorkflow runs the workflow function, turning a panic into an error.
func (rt *Runtime) callWorkflow(ctx context.Context, rs *runState, c claimed) (out json.RawMessage, err error) {
	def := rt.workflow(c.workflow)
	if def == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownWorkflow, c.workflow)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("durable: workflow %q panicked: %v", c.workflow, p)
		}
	}()
	return def.exec(ctx, c.input)
}

// settle records what the workflow's return means for the run, and
// returns the run as stored when it ended here (nil otherwise).
func (rt *Runtime) settle(parent, ctx context.Context, span trace.Span, rs *runState, output json.RawMessage, runErr error) *Run {
	stop, fatalErr := rs.outcome()
	switch {
	case errors.Is(stop, ErrSuspended):
		span.SetAttributes(attribute.String("durable.outcome", "parked"))
		recordRunOutcome(ctx, rs.workflow, "parked")
		return nil
	case stop != nil:
		span.SetAttributes(attribute.String("durable.outcome", "stopped"))
		recordRunOutcome(ctx, rs.workflow, "stopped")
		if !errors.Is(stop, ErrLeaseLost) {
			rt.release(parent, rs.tenant, rs.id, rs.attempt)
		}
		return nil
	case runErr != nil && fatalErr == nil && ctx.Err() != nil:
		// Shut down (or lease lost) while the workflow ran: the error is
		// likely the cancellation's, not the workflow's outcome.
		span.SetAttributes(attribute.String("durable.outcome", "stopped"))
		recordRunOutcome(ctx, rs.workflow, "stopped")
		if !errors.Is(context.Cause(ctx), ErrLeaseLost) {
			rt.release(parent, rs.tenant, rs.id, rs.attempt)
		}
		return nil
	}
	if fatalErr != nil {
		runErr = fatalErr
	}
	status, errText := StatusCompleted, ""
	if runErr != nil {
		status, errText, output = StatusFailed, cleanError(runErr.Error()), nil
		span.RecordError(runErr)
		span.SetStatus(codes.Error, errText)
	}
	final, err := rt.finish(context.WithoutCancel(parent), rs, status, output, errText)
	if pgErr, refused := refusedValue(err); refused && status == StatusCompleted {
		// The output was refused after all: the run fails with the reason
		// rather than being replayed forever.
		status, errText = StatusFailed, cleanError(fmt.Sprintf("%v: output refused by PostgreSQL: %s", ErrEncode, pgErr.Message))
		span.SetStatus(codes.Error, errText)
		final, err = rt.finish(context.WithoutCancel(parent), rs, status, nil, errText)
	}
	span.SetAttributes(attribute.String("durable.outcome", string(status)))
	if err != nil {
		level := slog.LevelError
		if errors.Is(err, ErrLeaseLost) { // cancelled or taken over meanwhile
			level = slog.LevelInfo
		}
		rt.cfg.Logger.Log(ctx, level, "durable: record run outcome", "run", rs.id, "status", status, "error", err)
		return nil
	}
	recordRunOutcome(ctx, rs.workflow, string(status))
	rt.cfg.Logger.DebugContext(ctx, "durable: run finished", "run", rs.id, "workflow", rs.workflow, "status", status)
	return &final
}

const finishSQL = `
UPDATE platform.durable_runs
SET status = $4, output = $5, error = NULLIF($6, ''), finished_at = now(), updated_at = now(), owner = NULL,
    lease_until = NULL, ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running'
RETURNING finished_at`

// finish records the run's outcome and returns the run as stored, which
// this process's Wait calls for it receive instead of reading it again.
// Every column but the end's time is known here, so only that one is
// read back.
func (rt *Runtime) finish(ctx context.Context, rs *runState, status Status, output json.RawMessage, errText string) (Run, error) {
	run := Run{Tenant: rs.tenant, ID: rs.id, Workflow: rs.workflow, Status: status, Input: rs.input,
		Output: output, Error: errText, Attempt: rs.attempt, CreatedAt: rs.createdAt}
	n, err := rt.commits.do(ctx, rt, finishRequest(rs, status, output, errText, &run.FinishedAt))
	if err == nil && n == 0 {
		err = ErrLeaseLost
	}
	run.UpdatedAt = run.FinishedAt
	return run, err
}

// finishRequest is finish's statement for the group commit; the end's
// time goes to finishedAt.
func finishRequest(rs *runState, status Status, output json.RawMessage, errText string, finishedAt *time.Time) *commitRequest {
	return &commitRequest{
		tenant: rs.tenant, sql: finishSQL, args: []any{rs.tenant, rs.id, rs.attempt, string(status), output, errText},
		scan:  func(row rowScanner) error { return row.Scan(finishedAt) },
		merge: &mergeable{kind: mergeFinish, run: rs.id, attempt: rs.attempt, at: finishedAt, status: status, output: output, errText: errText},
	}
}

const releaseSQL = `
UPDATE platform.durable_runs SET owner = NULL, lease_until = now(), ready_at = now(), updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running'`

// release hands a run's lease back so that any runtime may claim it now.
func (rt *Runtime) release(parent context.Context, tenant, id string, attempt int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	if _, err := rt.cfg.System.Exec(ctx, releaseSQL, tenant, id, attempt); err != nil {
		rt.cfg.Logger.ErrorContext(ctx, "durable: release lease", "run", id, "error", err)
	}
}

const heartbeatSQL = `
UPDATE platform.durable_runs
SET lease_until = now() + $4::bigint * interval '1 microsecond', ready_at = now() + $4::bigint * interval '1 microsecond'
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running'`

// heartbeat renews rs's lease every Heartbeat until stopped. When the run
// is no longer this worker's (taken over, cancelled) it cancels ctx with
// ErrLeaseLost so that the workflow stops at its next step.
func (rt *Runtime) heartbeat(ctx context.Context, rs *runState) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(rt.cfg.Heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			if rs.parked() {
				return
			}
			tag, err := rt.cfg.System.Exec(ctx, heartbeatSQL, rs.tenant, rs.id, rs.attempt, micros(rt.cfg.Lease))
			switch {
			case err != nil:
				rt.cfg.Logger.WarnContext(ctx, "durable: renew lease", "run", rs.id, "error", err)
			case tag.RowsAffected() == 0 && !rs.parked():
				rs.cancel(ErrLeaseLost)
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}
