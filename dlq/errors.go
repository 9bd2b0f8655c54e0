package dlq

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidConfig is returned by NewClient for a configuration that
	// cannot work.
	ErrInvalidConfig = errors.New("dlq: invalid config")
	// ErrInvalidJob is returned by the Enqueue methods for job parameters
	// that cannot be stored (no tenant, no queue, a negative max attempts,
	// a payload that is not JSON, …). Nothing is stored.
	ErrInvalidJob = errors.New("dlq: invalid job")
	// ErrMixedTenants is returned by EnqueueMany when the jobs of one call
	// belong to different tenants: it runs them in one tenant-scoped
	// transaction. EnqueueManyTx accepts what the caller's transaction may
	// write.
	ErrMixedTenants = errors.New("dlq: jobs of one EnqueueMany call belong to different tenants")
	// ErrInvalidFilter is returned for a Filter that cannot match anything
	// meaningful (a tenant that is not a UUID).
	ErrInvalidFilter = errors.New("dlq: invalid filter")
	// ErrInvalidAction wraps every reason DecodeAction refuses a body.
	ErrInvalidAction = errors.New("dlq: invalid action")
	// ErrJobNotFound is returned when no job has the given id.
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
	// ErrNoTenant is returned by InTenantTx for a context that carries no
	// job.
	ErrNoTenant = errors.New("dlq: context carries no job tenant")
	// ErrStarted is returned by Start on a client that is already running.
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

// Snooze puts the job back to run again after d without counting the
// attempt as a failure: it records no error and does not use up an attempt.
// A negative d counts as zero.
func Snooze(d time.Duration) error {
	return &snoozeError{after: max(d, 0)}
}
