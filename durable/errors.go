package durable

import (
	"errors"
	"fmt"

	"github.com/dealix/platform/internal/errs"
)

// The library's shared errors: each is the same value in every package
// that returns it (tenancy, idempotency, dlq, approvals, durable), so
// errors.Is(err, tenancy.ErrNoTenant) matches durable.ErrNoTenant.
var (
	// ErrNoTenant is returned by a call on the request path whose context
	// carries no tenant, and by a ...Tx call whose transaction is not
	// scoped to one.
	ErrNoTenant = errs.ErrNoTenant
	// ErrInvalidTenant is returned for a tenant id that is not a UUID.
	ErrInvalidTenant = errs.ErrInvalidTenant
	// ErrInvalidConfig wraps every configuration error from New and
	// NewSweeper; the message says which field is wrong.
	ErrInvalidConfig = errs.ErrInvalidConfig
	// ErrTenantMismatch is matched (errors.Is) by *TenantMismatchError.
	ErrTenantMismatch = errs.ErrTenantMismatch
)

// TenantMismatchError is returned by StartTx, SignalTx and CancelTx when
// the context names a tenant other than the one the transaction is scoped
// to; nothing was written and the transaction's scope is unchanged. It is
// the same type as tenancy.TenantMismatchError.
type TenantMismatchError = errs.TenantMismatchError

var (
	// ErrUnknownWorkflow is returned by Start for a workflow name the
	// runtime has not registered; nothing is stored.
	ErrUnknownWorkflow = errors.New("durable: unknown workflow")
	// ErrDuplicateWorkflow is returned by Register for a name registered
	// before.
	ErrDuplicateWorkflow = errors.New("durable: workflow already registered")
	// ErrInvalidRunID is returned for a caller-given run id that is empty,
	// longer than 200 bytes or holds control characters.
	ErrInvalidRunID = errors.New("durable: invalid run id")
	// ErrInvalidName is returned for an empty workflow, step or signal
	// name, or one holding a NUL character or invalid UTF-8.
	ErrInvalidName = errors.New("durable: invalid name")
	// ErrRunIDConflict is returned by Start when the given run id already
	// names a run of another workflow.
	ErrRunIDConflict = errors.New("durable: run id already used by another workflow")
	// ErrRunNotFound is returned for a run id the tenant does not have.
	ErrRunNotFound = errors.New("durable: run not found")
	// ErrRunFinished is returned when signalling or cancelling a run that
	// has completed, failed or been cancelled.
	ErrRunFinished = errors.New("durable: run already finished")
	// ErrRunNotFailed is returned by Resume for a run that is neither
	// failed nor cancelled.
	ErrRunNotFailed = errors.New("durable: run is not failed or cancelled")
	// ErrEncode marks a value (input, step result, workflow output or
	// signal payload) that cannot be encoded as JSON or that PostgreSQL's
	// jsonb refuses (a string holding a NUL character). Such a value is
	// refused before it is written: Start and Signal return the error, and
	// a run whose step result or output is refused fails with the reason.
	ErrEncode = errors.New("durable: value cannot be stored as JSON")
	// ErrDecode marks a recorded value (run input, step result or signal
	// payload) that does not decode into the type the code asks for.
	ErrDecode = errors.New("durable: value does not decode")
	// ErrDeterminism is matched (errors.Is) by *DeterminismError.
	ErrDeterminism = errors.New("durable: workflow is not deterministic")
	// ErrNotInWorkflow is returned by Step, TxStep, Sleep and WaitSignal
	// when ctx does not come from a running workflow.
	ErrNotInWorkflow = errors.New("durable: context is not a workflow's")
	// ErrSuspended is returned by Sleep and WaitSignal when the run has
	// been parked until its wake-up time or signal: the workflow function
	// must return it (any error will do; the runtime knows the run is
	// parked), and every later step call returns it too.
	ErrSuspended = errors.New("durable: run suspended")
	// ErrSignalTimeout is returned by WaitSignal when the timeout passed
	// before a signal of that name arrived.
	ErrSignalTimeout = errors.New("durable: signal wait timed out")
	// ErrLeaseLost means another worker took the run over (its lease had
	// expired) or an operator cancelled it: this worker stops without
	// writing anything more.
	ErrLeaseLost = errors.New("durable: lease lost")
	// ErrNoSystemPool is returned by Run on a runtime configured without
	// a system pool.
	ErrNoSystemPool = errors.New("durable: no system pool configured")
	// ErrAlreadyRunning is returned by Run while another Run of the same
	// runtime is active.
	ErrAlreadyRunning = errors.New("durable: runtime already running")
	// ErrStopped is returned by a step call (Step, TxStep, Sleep,
	// WaitSignal) when the runtime is stopping, and is the cause
	// (context.Cause) a run's context carries after StopAndCancel: the
	// run is parked, to be resumed by whichever runtime claims it next.
	ErrStopped = errors.New("durable: runtime stopped")
)

// DeterminismError reports that a workflow's code asked for a different
// step than the one recorded at the same sequence number: the code changed
// under a run in flight, or depends on something other than its input and
// its steps' results. The run is marked failed with this error.
type DeterminismError struct {
	Seq       int    // the step's sequence number, from 1
	Recorded  string // kind:name recorded at Seq
	Requested string // kind:name the code asked for
}

func (e *DeterminismError) Error() string {
	return fmt.Sprintf("durable: determinism error at step %d: recorded %q, code asked for %q", e.Seq, e.Recorded, e.Requested)
}

// Is makes errors.Is(err, ErrDeterminism) true.
func (e *DeterminismError) Is(target error) bool { return target == ErrDeterminism }

// StepError is a step's failure after its retry policy gave up. On replay
// the recorded failure is returned again (with Err carrying the recorded
// message), so a workflow that handles it takes the same path.
type StepError struct {
	Seq      int
	Name     string
	Attempts int
	Err      error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("durable: step %d %q failed after %d attempt(s): %v", e.Seq, e.Name, e.Attempts, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// permanentError stops a step's retries.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent wraps err so that a step returning it is not retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

var (
	// ErrRunFailed is returned by Workflow.Result for a failed run; the
	// message carries the recorded reason.
	ErrRunFailed = errors.New("durable: run failed")
	// ErrRunCancelled is returned by Workflow.Result for a cancelled run.
	ErrRunCancelled = errors.New("durable: run cancelled")
	// ErrInvalidCursor is returned by List for a paging cursor it did not
	// make.
	ErrInvalidCursor = errors.New("durable: invalid list cursor")
)
