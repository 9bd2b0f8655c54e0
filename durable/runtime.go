package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// Runtime starts, executes and manages durable runs. It is safe for
// concurrent use; register every workflow before calling Run.
type Runtime struct {
	cfg Config

	mu        sync.RWMutex
	workflows map[string]*workflowDef

	poke    chan struct{}
	commits groupCommit

	workMu sync.Mutex
	pool   *workerPool // set while Run is active

	// backlog is set when runs may be waiting to be claimed (a start
	// found no free slot, a claim filled every slot it had): a slot that
	// frees then makes the workers look at once instead of at their next
	// poll.
	backlog atomic.Bool

	waitMu  sync.Mutex
	waiters map[string][]*waiter // by runKey: Wait calls in this process
	active  map[string]bool      // by runKey: runs executing here
}

// waiter is one Wait call waiting for a run this runtime executes.
type waiter struct {
	ended chan struct{} // closed when the execution here ended
	final *Run          // the run as its end stored it, set before ended is closed; nil when it did not end
}

// workflowDef executes one registered workflow on raw JSON.
type workflowDef struct {
	name string
	exec func(ctx context.Context, input json.RawMessage) (json.RawMessage, error)
}

// New validates cfg, fills in its defaults and returns a Runtime.
func New(cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Runtime{cfg: cfg, workflows: map[string]*workflowDef{}, poke: make(chan struct{}, 1), waiters: map[string][]*waiter{}, active: map[string]bool{}}, nil
}

// Workflow is a registered workflow with typed input and output.
type Workflow[In, Out any] struct {
	rt   *Runtime
	name string
}

// Register registers fn under name. fn must be deterministic: apart from
// its input it may only depend on the results of the steps it runs
// (Step, TxStep, Sleep, WaitSignal), which are replayed from their
// checkpoints when a run resumes.
func Register[In, Out any](rt *Runtime, name string, fn func(ctx context.Context, in In) (Out, error)) (*Workflow[In, Out], error) {
	if err := checkName("workflow", name); err != nil {
		return nil, err
	}
	def := &workflowDef{name: name, exec: func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
		var in In
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("%w: input of workflow %q: %v", ErrDecode, name, err)
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		encoded, err := encodeJSON(out)
		if err != nil {
			return nil, fmt.Errorf("%w: output of workflow %q: %v", ErrEncode, name, err)
		}
		return encoded, nil
	}}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if _, dup := rt.workflows[name]; dup {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateWorkflow, name)
	}
	rt.workflows[name] = def
	return &Workflow[In, Out]{rt: rt, name: name}, nil
}

// Name returns the workflow's registered name.
func (w *Workflow[In, Out]) Name() string { return w.name }

// Start starts a run of w for the tenant ctx carries (see Runtime.Start).
func (w *Workflow[In, Out]) Start(ctx context.Context, in In, opts ...StartOption) (Run, error) {
	return w.rt.Start(ctx, w.name, in, opts...)
}

// StartForTenant starts a run of w for tenant, for system work across
// tenants (see Runtime.StartForTenant).
func (w *Workflow[In, Out]) StartForTenant(ctx context.Context, tenant string, in In, opts ...StartOption) (Run, error) {
	return w.rt.StartForTenant(ctx, tenant, w.name, in, opts...)
}

// StartTx starts a run of w in the caller's transaction (see
// Runtime.StartTx). tx must already be scoped to a tenant; it is never
// re-scoped, and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (w *Workflow[In, Out]) StartTx(ctx context.Context, tx pgx.Tx, in In, opts ...StartOption) (Run, error) {
	return w.rt.StartTx(ctx, tx, w.name, in, opts...)
}

// Result waits until the run runID of the tenant ctx carries is final and
// returns its decoded output, or an error matching ErrRunFailed or
// ErrRunCancelled with the recorded reason.
func (w *Workflow[In, Out]) Result(ctx context.Context, runID string) (Out, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		var zero Out
		return zero, err
	}
	return w.ResultForTenant(ctx, tenant, runID)
}

// ResultForTenant is Result for tenant's run, for system work across
// tenants.
func (w *Workflow[In, Out]) ResultForTenant(ctx context.Context, tenant, runID string) (Out, error) {
	var out Out
	run, err := w.rt.WaitForTenant(ctx, tenant, runID)
	if err != nil {
		return out, err
	}
	switch run.Status {
	case StatusFailed:
		return out, fmt.Errorf("%w: %s", ErrRunFailed, run.Error)
	case StatusCancelled:
		return out, fmt.Errorf("%w: %s", ErrRunCancelled, run.Error)
	}
	if err := json.Unmarshal(run.Output, &out); err != nil {
		return out, fmt.Errorf("%w: output of run %q: %v", ErrDecode, runID, err)
	}
	return out, nil
}

// StartOption configures Start.
type StartOption func(*startOptions)

type startOptions struct {
	runID string
}

// WithRunID gives the run its id, making the start idempotent: starting
// again with the same id returns the run the first start created (whatever
// its status and input), and ErrRunIDConflict if that run belongs to
// another workflow. Without it the run gets a random UUID.
func WithRunID(id string) StartOption {
	return func(o *startOptions) { o.runID = id }
}

// ValidateRunID reports whether id can name a run: 1 to 200 bytes of
// printable UTF-8.
func ValidateRunID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("%w: length %d not in 1..200", ErrInvalidRunID, len(id))
	}
	for _, r := range id {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return fmt.Errorf("%w: %q holds a control or invalid character", ErrInvalidRunID, id)
		}
	}
	return nil
}

// Start starts a run of the registered workflow for the tenant ctx
// carries (ErrNoTenant without one), with input encoded as JSON. When this
// runtime's Run is active and has a free slot, the run is stored already
// claimed by it and starts executing at once; otherwise it is stored
// pending for the next poll of any runtime. It returns the run as stored:
// with WithRunID, possibly one started before (and then nothing is
// executed). An input that cannot be stored (see ErrEncode) is refused
// and nothing is stored.
func (rt *Runtime) Start(ctx context.Context, workflow string, input any, opts ...StartOption) (Run, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return Run{}, err
	}
	return rt.StartForTenant(ctx, tenant, workflow, input, opts...)
}

// StartForTenant is Start for tenant, for system work across tenants; the
// tenant ctx carries, if any, is not consulted.
func (rt *Runtime) StartForTenant(ctx context.Context, tenant, workflow string, input any, opts ...StartOption) (Run, error) {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return Run{}, err
	}
	runID, encoded, err := rt.prepareStart(workflow, input, opts)
	if err != nil {
		return Run{}, err
	}
	// When this runtime's workers have a free slot the run is inserted
	// already claimed by them and executed at once, skipping the poll.
	pool := rt.reserveLocal(ctx)
	run := Run{Tenant: tenant, ID: runID, Workflow: workflow, Status: StatusPending, Input: encoded}
	sql, args := startPendingSQL, []any{tenant, runID, workflow, encoded}
	if pool != nil {
		run.Status, run.Owner, run.Attempt = StatusRunning, rt.cfg.WorkerID, 1
		sql, args = startClaimedSQL, []any{tenant, runID, workflow, encoded, rt.cfg.WorkerID, micros(rt.cfg.Lease)}
	}
	// Committed together with other starts and checkpoints in flight.
	req := &commitRequest{tenant: tenant, sql: sql, args: args, scan: func(row rowScanner) error { return row.Scan(&run.CreatedAt) }}
	if pool != nil {
		req.merge = &mergeable{kind: mergeStart, run: runID, at: &run.CreatedAt, workflow: workflow, input: encoded}
	}
	inserted, err := rt.commits.do(ctx, rt, req)
	run.UpdatedAt = run.CreatedAt
	if pool != nil {
		if err == nil && inserted == 1 {
			pool.spawn(rt, claimed{tenant: tenant, id: runID, workflow: workflow, input: encoded, attempt: 1, now: run.CreatedAt, createdAt: run.CreatedAt})
		} else {
			pool.cancelReservation()
		}
	}
	if err != nil {
		return Run{}, fmt.Errorf("durable: start run: %w", err)
	}
	if inserted == 0 {
		err = rls.Batch(ctx, rt.cfg.App, tenant, func(b *pgx.Batch) {
			b.Queue(getRunSQL, tenant, runID)
		}, func(br pgx.BatchResults) error {
			run, err = scanRun(br.QueryRow())
			if err != nil {
				return fmt.Errorf("durable: get run: %w", err)
			}
			run, err = sameWorkflow(run, workflow)
			return err
		})
		return run, err
	}
	if pool == nil {
		rt.wake()
	}
	return run, nil
}

// The database's clock stamps every time a run records, so that
// instances whose clocks differ agree on leases and wake-ups.
const startPendingSQL = `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, ready_at, created_at, updated_at)
VALUES ($1, $2, $3, 'pending', $4, now(), now(), now())
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING created_at`

const startClaimedSQL = `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, owner, attempt, lease_until, ready_at, created_at, updated_at)
VALUES ($1, $2, $3, 'running', $4, $5, 1, now() + $6::bigint * interval '1 microsecond',
        now() + $6::bigint * interval '1 microsecond', now(), now())
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING created_at`

// prepareStart checks a start's arguments and encodes its input.
func (rt *Runtime) prepareStart(workflow string, input any, opts []StartOption) (string, []byte, error) {
	if !rt.registered(workflow) {
		return "", nil, fmt.Errorf("%w: %q", ErrUnknownWorkflow, pgtext.Clean(workflow, 200))
	}
	var o startOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.runID == "" {
		o.runID = uuid.NewString()
	} else if err := ValidateRunID(o.runID); err != nil {
		return "", nil, err
	}
	encoded, err := encodeJSON(input)
	if err != nil {
		return "", nil, fmt.Errorf("%w: input of workflow %q: %v", ErrEncode, workflow, err)
	}
	return o.runID, encoded, nil
}

const insertRunSQL = `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, ready_at, created_at, updated_at)
VALUES ($1, $2, $3, 'pending', $4, now(), now(), now())
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING ` + runColumns

// StartTx starts a run in the caller's transaction tx; the run exists
// once tx commits and nothing is stored if tx rolls back. Workers pick it
// up at their next poll. tx must already be scoped to a tenant; it is
// never re-scoped, and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError.
func (rt *Runtime) StartTx(ctx context.Context, tx pgx.Tx, workflow string, input any, opts ...StartOption) (Run, error) {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return Run{}, err
	}
	runID, encoded, err := rt.prepareStart(workflow, input, opts)
	if err != nil {
		return Run{}, err
	}
	run, err := scanRun(tx.QueryRow(ctx, insertRunSQL, tenant, runID, workflow, encoded))
	if errors.Is(err, pgx.ErrNoRows) {
		if run, err = getIn(ctx, tx, tenant, runID); err != nil {
			return Run{}, err
		}
		return sameWorkflow(run, workflow)
	}
	if err != nil {
		return Run{}, fmt.Errorf("durable: start run: %w", err)
	}
	return run, nil
}

// sameWorkflow returns the run a repeated start found, or
// ErrRunIDConflict when it belongs to another workflow.
func sameWorkflow(run Run, workflow string) (Run, error) {
	if run.Workflow != workflow {
		return Run{}, fmt.Errorf("%w: run %q is a %q run", ErrRunIDConflict, run.ID, run.Workflow)
	}
	return run, nil
}

// getIn reads tenant's run runID through q, or returns ErrRunNotFound.
func getIn(ctx context.Context, q rls.Querier, tenant, runID string) (Run, error) {
	run, err := scanRun(q.QueryRow(ctx, getRunSQL, tenant, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("%w: %q", ErrRunNotFound, runID)
	}
	if err != nil {
		return Run{}, fmt.Errorf("durable: get run: %w", err)
	}
	return run, nil
}

func (rt *Runtime) registered(name string) bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	_, ok := rt.workflows[name]
	return ok
}

func (rt *Runtime) workflowNames() []string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	names := make([]string, 0, len(rt.workflows))
	for name := range rt.workflows {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (rt *Runtime) workflow(name string) *workflowDef {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.workflows[name]
}

// wake makes the workers poll now instead of at their next interval.
func (rt *Runtime) wake() {
	rt.backlog.Store(true)
	select {
	case rt.poke <- struct{}{}:
	default:
	}
}

const getRunSQL = `SELECT ` + runColumns + ` FROM platform.durable_runs WHERE tenant_id = $1 AND id = $2`

// Get returns the run runID of the tenant ctx carries, or ErrRunNotFound.
func (rt *Runtime) Get(ctx context.Context, runID string) (Run, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return Run{}, err
	}
	return rt.GetForTenant(ctx, tenant, runID)
}

// GetForTenant is Get for tenant's run, for system work across tenants.
func (rt *Runtime) GetForTenant(ctx context.Context, tenant, runID string) (Run, error) {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return Run{}, err
	}
	var run Run
	err = rls.Batch(ctx, rt.cfg.App, tenant, func(b *pgx.Batch) {
		b.Queue(getRunSQL, tenant, runID)
	}, func(br pgx.BatchResults) error {
		var err error
		run, err = scanRun(br.QueryRow())
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("%w: %q", ErrRunNotFound, runID)
	}
	if err != nil {
		return Run{}, fmt.Errorf("durable: get run: %w", err)
	}
	return run, nil
}

// Steps returns the checkpoints recorded for the run runID of the tenant
// ctx carries, by sequence number.
func (rt *Runtime) Steps(ctx context.Context, runID string) ([]StepRecord, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	return rt.StepsForTenant(ctx, tenant, runID)
}

// StepsForTenant is Steps for tenant's run, for system work across
// tenants.
func (rt *Runtime) StepsForTenant(ctx context.Context, tenant, runID string) ([]StepRecord, error) {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return nil, err
	}
	return rt.loadSteps(ctx, tenant, runID)
}

const loadStepsSQL = `SELECT seq, kind, name, status, output, coalesce(error, ''), attempts, created_at
FROM platform.durable_steps WHERE tenant_id = $1 AND run_id = $2 ORDER BY seq`

func (rt *Runtime) loadSteps(ctx context.Context, tenant, runID string) ([]StepRecord, error) {
	rows, err := rls.Query(ctx, rt.cfg.App, tenant, loadStepsSQL, tenant, runID)
	if err != nil {
		return nil, fmt.Errorf("durable: load steps: %w", err)
	}
	steps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StepRecord, error) {
		var s StepRecord
		err := row.Scan(&s.Seq, &s.Kind, &s.Name, &s.Status, &s.Output, &s.Error, &s.Attempts, &s.CreatedAt)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("durable: load steps: %w", err)
	}
	return steps, nil
}

// Wait waits until the run runID of the tenant ctx carries is final and
// returns it. Runs this runtime executes wake it at their end (and are
// looked at every Heartbeat meanwhile); others are polled for, at most
// every PollInterval. It returns early with ctx's error.
func (rt *Runtime) Wait(ctx context.Context, runID string) (Run, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return Run{}, err
	}
	return rt.WaitForTenant(ctx, tenant, runID)
}

// WaitForTenant is Wait for tenant's run, for system work across tenants.
func (rt *Runtime) WaitForTenant(ctx context.Context, tenant, runID string) (Run, error) {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return Run{}, err
	}
	key := runKey(tenant, runID)
	w, unsubscribe := rt.subscribe(key)
	defer func() { unsubscribe() }()
	delay := 10 * time.Millisecond
	// A run this runtime executes ends with a notification: no need to
	// look before it.
	skipLook := rt.executing(key)
	for {
		var run Run
		if !skipLook {
			var err error
			run, err = rt.GetForTenant(ctx, tenant, runID)
			if err != nil || run.Status.Finished() {
				return run, err
			}
		}
		skipLook = false
		wait := delay
		if rt.executing(key) {
			// Its end here wakes this call; until then a look only finds
			// what the execution itself notices within a heartbeat (a
			// cancellation, a lost lease).
			wait = max(delay, rt.cfg.Heartbeat)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return run, ctx.Err()
		case <-w.ended:
			timer.Stop()
			if w.final != nil {
				// The run ended here: its end was committed and is
				// returned as stored, without reading it again.
				return *w.final, nil
			}
			// Parked or stopped: look at the run, and subscribe again in
			// case it resumes here.
			unsubscribe()
			w, unsubscribe = rt.subscribe(key)
		case <-timer.C:
		}
		timer.Stop()
		delay = min(delay*2, max(rt.cfg.PollInterval, 10*time.Millisecond))
	}
}

func runKey(tenant, runID string) string { return tenant + "/" + runID }

// subscribe returns a waiter whose channel is closed when this runtime's
// execution of the run ends.
func (rt *Runtime) subscribe(key string) (*waiter, func()) {
	w := &waiter{ended: make(chan struct{})}
	rt.waitMu.Lock()
	rt.waiters[key] = append(rt.waiters[key], w)
	rt.waitMu.Unlock()
	return w, func() {
		rt.waitMu.Lock()
		defer rt.waitMu.Unlock()
		list := rt.waiters[key]
		for i, c := range list {
			if c == w {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(rt.waiters, key)
		} else {
			rt.waiters[key] = list
		}
	}
}

// executing reports whether this runtime is executing the run.
func (rt *Runtime) executing(key string) bool {
	rt.waitMu.Lock()
	defer rt.waitMu.Unlock()
	return rt.active[key]
}

// notifyEnded wakes this process's Wait calls for the run whose execution
// here ended (finished, parked or stopped), handing them final, the run as
// its end stored it (nil when it did not end).
func (rt *Runtime) notifyEnded(key string, final *Run) {
	rt.waitMu.Lock()
	list := rt.waiters[key]
	delete(rt.waiters, key)
	delete(rt.active, key)
	rt.waitMu.Unlock()
	for _, w := range list {
		w.final = final
		close(w.ended)
	}
}
