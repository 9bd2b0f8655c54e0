package dlq

import (
	"errors"
	"fmt"
	"time"

	"github.com/dealix/platform/internal/errs"
)

// The errors every package of the library shares: each is the same value
// in every package that returns it, so errors.Is(err, tenancy.ErrNoTenant)
// matches dlq.ErrNoTenant too.
var (
	// ErrNoTenant is returned by Enqueue and EnqueueMany for a context
	// that carries no tenant, and by every …Tx method for a transaction
	// that is not scoped to one. Nothing is stored.
	ErrNoTenant = errs.ErrNoTenant
	// ErrInvalidTenant is returned for a tenant id that is not a UUID (by
	// the …ForTenant methods, and wrapped by ErrInvalidFilter).
	ErrInvalidTenant = errs.ErrInvalidTenant
	// ErrInvalidConfig is wrapped by the errors of NewClient and
	// NewSweeper for a configuration that cannot work.
	ErrInvalidConfig = errs.ErrInvalidConfig
	// ErrTenantMismatch is matched by the *TenantMismatchError a …Tx
	// method returns when its context names a tenant other than the
	// transaction's.
	ErrTenantMismatch = errs.ErrTenantMismatch
)

// TenantMismatchError is the shared *errs.TenantMismatchError (also
// tenancy.TenantMismatchError): a …Tx call whose context names a tenant
// other than the one its transaction is scoped to. Nothing was written and
// the transaction's scope is unchanged.
type TenantMismatchError = errs.TenantMismatchError

var (
	// ErrInvalidJob is returned by the Enqueue methods for job parameters
	// that cannot be stored (no queue, a negative max attempts, a payload
	// that is not JSON or holds a NUL character, …). Nothing is stored.
	ErrInvalidJob = errors.New("dlq: invalid job")
	// ErrInvalidFilter is returned for a Filter that cannot match anything
	// meaningful (a tenant that is not a UUID).
	ErrInvalidFilter = errors.New("dlq: invalid filter")
	// ErrInvalidAction wraps every reason DecodeAction refuses a body.
	ErrInvalidAction = errors.New("dlq: invalid action")
	// ErrJobNotFound is returned when no job has the given id (among the
	// jobs of the tenant the call is scoped to, when it is).
	ErrJobNotFound = errors.New("dlq: job not found")
	// ErrNotDead is returned by Redrive and DiscardJob for a job that is not
	// in the dead-letter state.
	ErrNotDead = errors.New("dlq: job is not dead")
	// ErrPayload wraps a payload that does not decode into the handler's
	// type. The attempt fails like any other error: the job is retried and
	// ends dead with the decode error in its history.
	ErrPayload = errors.New("dlq: payload does not decode")
	// ErrPanic wraps the value of a handler that panicked; the attempt
	// counts as a failure.
	ErrPanic = errors.New("dlq: handler panicked")
	// ErrLeaseExpired is recorded in a job's history when the rescuer finds
	// its lease expired: the worker that ran it died or lost the database.
	ErrLeaseExpired = errors.New("dlq: lease expired before the job finished")
	// ErrStarted is returned by Start on a client that is already running
	// (or still stopping).
	ErrStarted = errors.New("dlq: client already started")
	// ErrNoQueues is returned by Start on a client configured without queues.
	ErrNoQueues = errors.New("dlq: client has no queues to work")
)

// discardError is what Discard returns.
type discardError struct{ err error }

func (e *discardError) Error() string { return "dlq: discard: " + e.err.Error() }
func (e *discardError) Unwrap() error { return e.err }

// Discard makes a handler's failure final: the job goes to the dead-letter
// state at once, with err recorded, whatever attempts remain. Use it for
// failures no retry can fix (a webhook answered 410 Gone, a payload for a
// deleted record). A nil err is recorded as "discarded".
func Discard(err error) error {
	if err == nil {
		err = errors.New("discarded")
	}
	return &discardError{err: err}
}

// snoozeError is what Snooze returns.
type snoozeError struct{ after time.Duration }

func (e *snoozeError) Error() string { return fmt.Sprintf("dlq: snooze %s", e.after) }

// Snooze puts the job back to run again d after the database's now()
// without counting the attempt as a failure: it records no error and does
// not use up an attempt. A negative d counts as zero.
func Snooze(d time.Duration) error {
	return &snoozeError{after: max(d, 0)}
}
