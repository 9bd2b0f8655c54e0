package durable

import (
	"encoding/json"
	"time"
)

// Status is a run's state.
type Status string

// The statuses of a run. Pending, running, sleeping and waiting runs are
// incomplete; the other three are final.
const (
	StatusPending   Status = "pending"   // started, not yet claimed by a worker
	StatusRunning   Status = "running"   // owned by a worker under a lease
	StatusSleeping  Status = "sleeping"  // parked until its wake-up time
	StatusWaiting   Status = "waiting"   // parked until a signal or its deadline
	StatusCompleted Status = "completed" // returned an output
	StatusFailed    Status = "failed"    // returned or hit an error
	StatusCancelled Status = "cancelled" // cancelled by an operator
)

// Finished reports whether s is final.
func (s Status) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

func (s Status) valid() bool {
	switch s {
	case StatusPending, StatusRunning, StatusSleeping, StatusWaiting, StatusCompleted, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Run is a run's recorded state.
type Run struct {
	Tenant   string
	ID       string
	Workflow string
	Status   Status
	Input    json.RawMessage
	Output   json.RawMessage // set when completed
	Error    string          // the reason when failed or cancelled
	// Attempt counts how many times a worker claimed the run.
	Attempt int64
	// Owner is the worker holding the lease while running.
	Owner string
	// WakeAt is the wake-up time while sleeping and the signal deadline
	// while waiting (zero for a wait without timeout).
	WakeAt time.Time
	// WaitingFor names the signal a waiting run waits for.
	WaitingFor string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time // zero until final
}

// StepRecord is one recorded checkpoint of a run.
type StepRecord struct {
	Seq       int
	Kind      string // step, tx, sleep or signal
	Name      string
	Status    string // completed, failed or timeout
	Output    json.RawMessage
	Error     string
	Attempts  int
	CreatedAt time.Time
}

const runColumns = `tenant_id::text, id, workflow, status, input, output, coalesce(error, ''), attempt,
	coalesce(owner, ''), wake_at, coalesce(wait_signal, ''), created_at, updated_at, finished_at`

type rowScanner interface {
	Scan(dest ...any) error
}

func scanRun(row rowScanner) (Run, error) {
	var r Run
	var status string
	var wake, finished *time.Time
	err := row.Scan(&r.Tenant, &r.ID, &r.Workflow, &status, &r.Input, &r.Output, &r.Error, &r.Attempt,
		&r.Owner, &wake, &r.WaitingFor, &r.CreatedAt, &r.UpdatedAt, &finished)
	if err != nil {
		return Run{}, err
	}
	r.Status = Status(status)
	if wake != nil {
		r.WakeAt = *wake
	}
	if finished != nil {
		r.FinishedAt = *finished
	}
	return r, nil
}
