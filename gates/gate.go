package gates

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Status is the state a check found a gate in.
type Status string

const (
	// Closed: implemented and verified by the check.
	Closed Status = "closed"
	// Partial: some of the definition of done holds, not all.
	Partial Status = "partial"
	// Open: not done, or the check failed.
	Open Status = "open"
	// Blocked: cannot be verified here (credentials, a person, outside
	// infrastructure). Never counts as closed.
	Blocked Status = "blocked"
)

// valid reports whether s is one of the four statuses.
func (s Status) valid() bool {
	switch s {
	case Closed, Partial, Open, Blocked:
		return true
	}
	return false
}

// Priority ranks a gate; every P0 must close for a launch.
type Priority string

const (
	// P0 gates must all close.
	P0 Priority = "P0"
	// P1 gates should close before launch.
	P1 Priority = "P1"
	// P2 gates may follow launch.
	P2 Priority = "P2"
)

// Gate is one release or launch condition and the check that proves it.
type Gate struct {
	// ID is short and unique within its set, such as "T1".
	ID string `json:"id"`
	// Title says what must hold.
	Title string `json:"title"`
	// Area groups gates in reports (technical, security, …).
	Area string `json:"area,omitempty"`
	// Priority is P0, P1 or P2. Default: P1.
	Priority Priority `json:"priority,omitempty"`
	// Done is the definition of done, shown in reports.
	Done string `json:"done,omitempty"`
	// Check proves the gate. A gate without a check is open.
	Check Check `json:"-"`
	// Timeout bounds the check. Default: the set's timeout.
	Timeout time.Duration `json:"-"`
}

// Result is what one check found.
type Result struct {
	// Status is the gate's state.
	Status Status `json:"status"`
	// Evidence says what was measured, such as "200 in 12ms, status=ok".
	Evidence string `json:"evidence,omitempty"`
	// Reason says why a gate is blocked or open.
	Reason string `json:"reason,omitempty"`
	// Duration is how long the check ran.
	Duration time.Duration `json:"duration_ns"`
}

// Check proves a gate. Run must honour ctx's deadline; a check that
// overruns it is reported open with a timeout reason.
type Check interface {
	Run(ctx context.Context) Result
}

// CheckFunc adapts a function to a Check.
type CheckFunc func(ctx context.Context) Result

// Run calls f.
func (f CheckFunc) Run(ctx context.Context) Result { return f(ctx) }

// BlockedCheck is a check that always reports the gate blocked, with its
// reason: the gate needs what this environment cannot give.
type BlockedCheck struct {
	// Reason names what is missing, such as "needs a PostHog API key".
	Reason string
}

// Run reports blocked.
func (b BlockedCheck) Run(context.Context) Result {
	return Result{Status: Blocked, Reason: b.Reason}
}

// ErrInvalidSet is returned for a set that cannot run: duplicate or empty
// gate ids, an unknown priority, a rule that asks for more gates than the
// set has.
var ErrInvalidSet = errors.New("gates: invalid set")

// closedf is a closed Result with formatted evidence.
func closedf(format string, args ...any) Result {
	return Result{Status: Closed, Evidence: fmt.Sprintf(format, args...)}
}

// openf is an open Result with a formatted reason.
func openf(format string, args ...any) Result {
	return Result{Status: Open, Reason: fmt.Sprintf(format, args...)}
}
