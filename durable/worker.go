package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Run executes runs until ctx is done: it claims pending runs, runs whose
// wake-up time or signal deadline came, runs that were signalled, and
// running runs whose lease expired (a crashed or stalled worker's), at
// most Concurrency at a time, and resumes each from its last checkpoint.
// When ctx is done it stops its runs at their next step, hands their
// leases back so that another runtime can take them at once, and returns
// nil. Several runtimes (processes) may call Run on the same database: a
// run is only ever executed by the worker holding its lease.
func (rt *Runtime) Run(ctx context.Context) error {
	if rt.cfg.System == nil {
		return ErrNoSystemPool
	}
	pool := &workerPool{ctx: ctx, slots: make(chan struct{}, rt.cfg.Concurrency)}
	rt.workMu.Lock()
	if rt.pool != nil {
		rt.workMu.Unlock()
		return ErrAlreadyRunning
	}
	rt.pool = pool
	rt.workMu.Unlock()
	defer func() {
		rt.workMu.Lock()
		rt.pool = nil
		rt.workMu.Unlock()
		pool.wg.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-rt.poke:
		}
		free := pool.reserve(rt.cfg.Concurrency)
		claimed := 0
		if free > 0 {
			var err error
			claimed, err = rt.claimAndExecute(ctx, pool, free)
			if err != nil && ctx.Err() == nil {
				rt.cfg.Logger.ErrorContext(ctx, "durable: claim runs", "error", err)
			}
			pool.unreserve(free - claimed)
		}
		if claimed == free && free > 0 {
			// There may be more: look again as soon as a slot frees.
			timer.Reset(0)
			continue
		}
		timer.Reset(rt.cfg.PollInterval)
	}
}

// workerPool holds the execution slots of an active Run.
type workerPool struct {
	ctx   context.Context
	slots chan struct{}
	wg    sync.WaitGroup
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
		defer func() { p.unreserve(1); rt.wake() }()
		rt.execute(p.ctx, c)
		rt.notifyEnded(key)
	}()
}

// cancelReservation gives back a slot reserveLocal took.
func (p *workerPool) cancelReservation() {
	p.unreserve(1)
	p.wg.Done()
}

// reserveLocal reserves a slot of the active Run for a run started in this
// process, or returns nil.
func (rt *Runtime) reserveLocal() *workerPool {
	rt.workMu.Lock()
	defer rt.workMu.Unlock()
	if rt.pool == nil || rt.pool.ctx.Err() != nil || rt.pool.reserve(1) == 0 {
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
}

const claimSQL = `
WITH due AS (
    SELECT tenant_id, id FROM platform.durable_runs
    WHERE ready_at <= $1 AND status IN ('pending', 'running', 'sleeping', 'waiting') AND workflow = ANY($2)
    ORDER BY ready_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.durable_runs r
SET status = 'running', owner = $4, attempt = r.attempt + 1, lease_until = $5, ready_at = $5, updated_at = $1
FROM due WHERE r.tenant_id = due.tenant_id AND r.id = due.id
RETURNING r.tenant_id::text, r.id, r.workflow, r.input, r.attempt, r.wait_seq, r.wake_at`

// claimAndExecute claims up to limit runs, for which slots are reserved,
// and executes each in its own goroutine.
func (rt *Runtime) claimAndExecute(ctx context.Context, pool *workerPool, limit int) (int, error) {
	names := rt.workflowNames()
	if len(names) == 0 {
		return 0, nil
	}
	now := rt.cfg.Clock()
	rows, err := rt.cfg.System.Query(ctx, claimSQL, now, names, limit, rt.cfg.WorkerID, now.Add(rt.cfg.Lease))
	if err != nil {
		return 0, err
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var c claimed
		err := row.Scan(&c.tenant, &c.id, &c.workflow, &c.input, &c.attempt, &c.waitSeq, &c.wakeAt)
		return c, err
	})
	if err != nil {
		return 0, err
	}
	rt.workMu.Lock()
	pool.wg.Add(len(runs))
	rt.workMu.Unlock()
	for _, c := range runs {
		pool.spawn(rt, c)
	}
	return len(runs), nil
}

// execute runs one claimed run to its end, its parking or the loss of
// its lease.
func (rt *Runtime) execute(parent context.Context, c claimed) {
	ctx, span := rt.cfg.tracer().Start(parent, "durable.run "+c.workflow, trace.WithAttributes(
		attribute.String("durable.workflow", c.workflow),
		attribute.String("durable.run_id", c.id),
		attribute.String("durable.tenant", c.tenant),
		attribute.Int64("durable.attempt", c.attempt),
	))
	defer span.End()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	rs := &runState{rt: rt, tenant: c.tenant, id: c.id, workflow: c.workflow, attempt: c.attempt, cancel: cancel}
	if c.waitSeq != nil && c.wakeAt != nil {
		rs.waitSeq, rs.waitDeadline = *c.waitSeq, *c.wakeAt
	}
	var steps []StepRecord
	if c.attempt > 1 { // a first claim has nothing recorded yet
		var err error
		if steps, err = rt.loadStepsFor(ctx, c.tenant, c.id); err != nil {
			rt.cfg.Logger.ErrorContext(ctx, "durable: load checkpoints", "run", c.id, "error", err)
			rt.release(parent, rs)
			return
		}
	}
	rs.recorded = make(map[int]StepRecord, len(steps))
	for _, s := range steps {
		rs.recorded[s.Seq] = s
	}

	stopHeartbeat := rt.heartbeat(ctx, rs)
	output, runErr := rt.callWorkflow(context.WithValue(ctx, stateKey{}, rs), rs, c)
	stopHeartbeat()
	rt.settle(parent, ctx, span, rs, output, runErr)
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

// settle records what the workflow's return means for the run.
func (rt *Runtime) settle(parent, ctx context.Context, span trace.Span, rs *runState, output json.RawMessage, runErr error) {
	stop, fatalErr := rs.outcome()
	switch {
	case errors.Is(stop, ErrSuspended):
		span.SetAttributes(attribute.String("durable.outcome", "parked"))
		recordRunOutcome(ctx, rs.workflow, "parked")
		return
	case stop != nil:
		span.SetAttributes(attribute.String("durable.outcome", "stopped"))
		recordRunOutcome(ctx, rs.workflow, "stopped")
		if !errors.Is(stop, ErrLeaseLost) {
			rt.release(parent, rs)
		}
		return
	case runErr != nil && fatalErr == nil && ctx.Err() != nil:
		// Shut down (or lease lost) while the workflow ran: the error is
		// likely the cancellation's, not the workflow's outcome.
		span.SetAttributes(attribute.String("durable.outcome", "stopped"))
		recordRunOutcome(ctx, rs.workflow, "stopped")
		if !errors.Is(context.Cause(ctx), ErrLeaseLost) {
			rt.release(parent, rs)
		}
		return
	}
	if fatalErr != nil {
		runErr = fatalErr
	}
	status, errText := StatusCompleted, ""
	if runErr != nil {
		status, errText, output = StatusFailed, runErr.Error(), nil
		span.RecordError(runErr)
		span.SetStatus(codes.Error, errText)
	}
	span.SetAttributes(attribute.String("durable.outcome", string(status)))
	if err := rt.finish(context.WithoutCancel(parent), rs, status, output, errText); err != nil {
		level := slog.LevelError
		if errors.Is(err, ErrLeaseLost) { // cancelled or taken over meanwhile
			level = slog.LevelInfo
		}
		rt.cfg.Logger.Log(ctx, level, "durable: record run outcome", "run", rs.id, "status", status, "error", err)
		return
	}
	recordRunOutcome(ctx, rs.workflow, string(status))
	rt.cfg.Logger.DebugContext(ctx, "durable: run finished", "run", rs.id, "workflow", rs.workflow, "status", status)
}

const finishSQL = `
UPDATE platform.durable_runs
SET status = $4, output = $5, error = NULLIF($6, ''), finished_at = $7, updated_at = $7, owner = NULL,
    lease_until = NULL, ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running'`

func (rt *Runtime) finish(ctx context.Context, rs *runState, status Status, output json.RawMessage, errText string) error {
	tag, err := rt.commits.exec(ctx, rt, rs.tenant, finishSQL, rs.tenant, rs.id, rs.attempt, string(status), output, errText, rt.cfg.Clock())
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrLeaseLost
	}
	return err
}

const releaseSQL = `
UPDATE platform.durable_runs SET owner = NULL, lease_until = $4, ready_at = $4, updated_at = $4
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running'`

// release hands a run's lease back so that any runtime may claim it now.
func (rt *Runtime) release(parent context.Context, rs *runState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 5*time.Second)
	defer cancel()
	if _, err := rt.cfg.System.Exec(ctx, releaseSQL, rs.tenant, rs.id, rs.attempt, rt.cfg.Clock()); err != nil {
		rt.cfg.Logger.ErrorContext(ctx, "durable: release lease", "run", rs.id, "error", err)
	}
}

const heartbeatSQL = `
UPDATE platform.durable_runs SET lease_until = $4, ready_at = $4
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
			tag, err := rt.cfg.System.Exec(ctx, heartbeatSQL, rs.tenant, rs.id, rs.attempt, rt.cfg.Clock().Add(rt.cfg.Lease))
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

const setTenantSQL = "SELECT set_config('app.tenant_id', $1, true)"

// tenantBatch sends the statements queue adds, after setting the tenant,
// as one batch: one round trip and one implicit transaction, so the
// tenant setting holds for exactly those statements. read reads their
// results.
func (rt *Runtime) tenantBatch(ctx context.Context, tenant string, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	b := &pgx.Batch{}
	b.Queue(setTenantSQL, tenant)
	queue(b)
	br := rt.cfg.App.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return fmt.Errorf("durable: set tenant: %w", err)
	}
	if err := read(br); err != nil {
		_ = br.Close()
		return err
	}
	return br.Close()
}

func (rt *Runtime) loadStepsFor(ctx context.Context, tenant, runID string) ([]StepRecord, error) {
	var steps []StepRecord
	err := rt.tenantBatch(ctx, tenant, func(b *pgx.Batch) {
		b.Queue(loadStepsSQL, tenant, runID)
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		steps, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (StepRecord, error) {
			var s StepRecord
			err := row.Scan(&s.Seq, &s.Kind, &s.Name, &s.Status, &s.Output, &s.Error, &s.Attempts, &s.CreatedAt)
			return s, err
		})
		return err
	})
	return steps, err
}
