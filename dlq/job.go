package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// State is where a job is in its life.
type State string

// The states of a job.
const (
	// StateAvailable: waiting to run once its RunAt has come (before that
	// it is scheduled, or retrying when it has failed before).
	StateAvailable State = "available"
	// StateRunning: leased by a worker.
	StateRunning State = "running"
	// StateCompleted: its handler succeeded.
	StateCompleted State = "completed"
	// StateDead: attempts used up or discarded by its handler; kept in the
	// dead-letter queue for re-drive.
	StateDead State = "dead"
	// StateDiscarded: a dead job an operator gave up on.
	StateDiscarded State = "discarded"
)

// JobParams describes a job to enqueue. It names no tenant: a job belongs
// to the tenant of the call that enqueues it — the context's (Enqueue), the
// transaction's (EnqueueTx) or the one named explicitly (EnqueueForTenant)
// — so there is never a second place to say it that could disagree.
type JobParams struct {
	// Queue names the queue the job waits in. Required, at most 128
	// characters.
	Queue string
	// Kind tells the queue's handler what to do with the payload.
	// Optional, at most 128 characters.
	Kind string
	// Payload is the handler's input: a json.RawMessage or []byte holding
	// JSON, or any value encoding/json can encode. Default: {}.
	Payload any
	// DedupKey, when set, makes the job unique in its tenant and queue:
	// enqueueing a second job with the key returns the first job and
	// stores nothing, for as long as the first job's row exists (until
	// cleanup after its retention). At most 255 characters.
	DedupKey string
	// Priority orders available jobs of a queue: higher runs first.
	// Default 0.
	Priority int16
	// RunAt delays the job until then. Default: the database's now(), so
	// the job is due at once whatever the enqueuing process's clock says.
	RunAt time.Time
	// MaxAttempts is how many times the job runs before it is dead.
	// Default: the client's Config.MaxAttempts.
	MaxAttempts int
}

// Inserted is the outcome of enqueueing one job.
type Inserted struct {
	// ID is the job's id: the new job's, or for a duplicate the id of the
	// job that already holds the dedup key.
	ID int64
	// Duplicate reports that a job with the dedup key existed and nothing
	// was stored.
	Duplicate bool
}

// AttemptError is one failed attempt in a job's history.
type AttemptError struct {
	Attempt int `json:"attempt"`
	// At is when the failure was recorded, by the database's clock.
	At time.Time `json:"at"`
	// Error is the handler's error text as stored: NUL characters and
	// invalid UTF-8 replaced by U+FFFD, cut to 32 KiB.
	Error string `json:"error"`
	// Panic reports that the handler panicked; Error then holds the panic
	// value and the stack.
	Panic bool `json:"panic,omitempty"`
}

// Job is a job as its handler sees it.
type Job struct {
	ID          int64
	Tenant      string
	Queue       string
	Kind        string
	Payload     json.RawMessage
	Priority    int16
	Attempt     int // 1 on the first run
	MaxAttempts int
	CreatedAt   time.Time
	// Errors are the failures of earlier attempts, oldest first.
	Errors []AttemptError

	// claims is the fencing token of this claim (see migration 002): the
	// job's claim count when this worker fetched it.
	claims int64
}

// Handler runs jobs of one queue. It returns nil on success; an error to
// retry later with backoff (or, on the last attempt, to move the job to the
// dead-letter state); Discard(err) to make the failure final; or Snooze(d)
// to run again later without counting the attempt. A panic is recovered and
// counts as a failure. ctx ends at the queue's timeout (or at a hard stop)
// and carries the job (JobFrom) and the job's tenant under the library's
// shared key: tenancy.TenantFrom(ctx) returns it, and tenancy.InTx(ctx,
// appPool, fn) runs the job's effects in a transaction scoped to it.
type Handler interface {
	Work(ctx context.Context, job *Job) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) error

// Work calls f.
func (f HandlerFunc) Work(ctx context.Context, job *Job) error { return f(ctx, job) }

// Decode decodes the job's payload into a T, rejecting unknown fields and
// trailing data. Its error wraps ErrPayload.
func Decode[T any](job *Job) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(job.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("%w: job %d: %v", ErrPayload, job.ID, err)
	}
	if dec.More() {
		return v, fmt.Errorf("%w: job %d: trailing data after the payload", ErrPayload, job.ID)
	}
	return v, nil
}

// Typed adapts a function taking the decoded payload to Handler. A payload
// that does not decode fails the attempt with an error wrapping ErrPayload
// (so it is retried, then dead, with the reason in its history) and fn is
// not called.
func Typed[T any](fn func(ctx context.Context, job *Job, payload T) error) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) error {
		v, err := Decode[T](job)
		if err != nil {
			return err
		}
		return fn(ctx, job, v)
	})
}

type jobKey struct{}

// withJob returns ctx carrying job.
func withJob(ctx context.Context, job *Job) context.Context {
	return context.WithValue(ctx, jobKey{}, job)
}

// JobFrom returns the job a handler's context carries.
func JobFrom(ctx context.Context) (*Job, bool) {
	job, ok := ctx.Value(jobKey{}).(*Job)
	return job, ok
}
