package durable

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// stateKey carries the *runState of the run a workflow function executes.
type stateKey struct{}

// runState is one execution of a run by this worker.
type runState struct {
	rt       *Runtime
	tenant   string
	id       string
	workflow string
	attempt  int64 // the claim this execution holds; fences every write
	cancel   context.CancelCauseFunc
	// claimedAt is the database's clock when this execution claimed the
	// run: a replayed Sleep compares its wake-up time with it.
	claimedAt time.Time
	// input and createdAt are the run's, for the Run its end returns.
	input     json.RawMessage
	createdAt time.Time
	// soft is closed when the runtime stops softly: no new step starts.
	soft <-chan struct{}

	// waitSeq and waitDeadline are the signal wait a waiting run was parked
	// in, so that a resumed wait keeps its first deadline.
	waitSeq      int
	waitDeadline time.Time

	mu       sync.Mutex
	recorded map[int]StepRecord
	seq      int
	stop     error // ErrSuspended once parked, ErrLeaseLost, or an infrastructure error
	fatal    error // an error that fails the run whatever the workflow returns
}

func stateFrom(ctx context.Context) (*runState, error) {
	rs, _ := ctx.Value(stateKey{}).(*runState)
	if rs == nil {
		return nil, ErrNotInWorkflow
	}
	return rs, nil
}

// withoutState hides the run from a step's own function, so that steps
// cannot nest.
func withoutState(ctx context.Context) context.Context {
	return context.WithValue(ctx, stateKey{}, (*runState)(nil))
}

// next hands out the next sequence number and its recorded checkpoint, if
// any, checking that the code asks for the step recorded there.
func (rs *runState) next(kind, name string) (int, *StepRecord, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.stop != nil {
		return 0, nil, rs.stop
	}
	if rs.fatal != nil {
		return 0, nil, rs.fatal
	}
	rs.seq++
	rec, ok := rs.recorded[rs.seq]
	if !ok {
		return rs.seq, nil, nil
	}
	if rec.Kind != kind || rec.Name != name {
		rs.fatal = &DeterminismError{Seq: rs.seq, Recorded: rec.Kind + ":" + rec.Name, Requested: kind + ":" + name}
		return 0, nil, rs.fatal
	}
	return rs.seq, &rec, nil
}

// halt stops the execution: no step runs or records after it.
func (rs *runState) halt(err error) error {
	rs.mu.Lock()
	if rs.stop == nil {
		rs.stop = err
	}
	err = rs.stop
	rs.mu.Unlock()
	rs.cancel(err)
	return err
}

// failRun makes the run fail with err whatever the workflow returns.
func (rs *runState) failRun(err error) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.fatal == nil {
		rs.fatal = err
	}
	return rs.fatal
}

func (rs *runState) outcome() (stop, fatal error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.stop, rs.fatal
}

func (rs *runState) parked() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.stop == ErrSuspended
}

// softStopped reports whether the runtime is stopping softly.
func (rs *runState) softStopped() bool {
	select {
	case <-rs.soft:
		return true
	default:
		return false
	}
}

// Current describes the run a workflow function executes.
type Current struct {
	Tenant   string
	RunID    string
	Workflow string
	// Attempt counts the claims of the run, this one included.
	Attempt int64
}

// CurrentRun returns the run ctx belongs to; ok is false outside a
// workflow function.
func CurrentRun(ctx context.Context) (Current, bool) {
	rs, err := stateFrom(ctx)
	if err != nil {
		return Current{}, false
	}
	return Current{Tenant: rs.tenant, RunID: rs.id, Workflow: rs.workflow, Attempt: rs.attempt}, true
}
