package dlq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
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

// JobParams describes a job to enqueue.
type JobParams struct {
	// Tenant owns the job; its handler runs with it in the context.
	// Required: a UUID.
	Tenant string
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
	// RunAt delays the job until then. Default: now.
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
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
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
}

// Handler runs jobs of one queue. It returns nil on success; an error to
// retry later with backoff (or, on the last attempt, to move the job to the
// dead-letter state); Discard(err) to make the failure final; or Snooze(d)
// to run again later without counting the attempt. A panic is recovered and
// counts as a failure. ctx ends at the queue's timeout and carries the job's
// tenant (TenantFrom, InTenantTx).
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

// TenantFrom returns the tenant of the job a handler's context carries.
func TenantFrom(ctx context.Context) (string, bool) {
	job, ok := JobFrom(ctx)
	if !ok {
		return "", false
	}
	return job.Tenant, true
}

// InTenantTx runs fn in a transaction of db scoped to the tenant of the job
// ctx carries (see internal/rls): workers run as a role that bypasses
// row-level security, and a job's own effects should not. db is usually the
// app role's pool.
func InTenantTx(ctx context.Context, db rls.Beginner, fn func(pgx.Tx) error) error {
	tenant, ok := TenantFrom(ctx)
	if !ok {
		return ErrNoTenant
	}
	return rls.InTx(ctx, db, tenant, fn)
}
