package gates

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"
)

// DefaultTimeout bounds a check when neither its gate nor its set says
// otherwise.
const DefaultTimeout = 30 * time.Second

// Rule decides whether a set passes. The zero Rule asks for every gate
// closed.
type Rule struct {
	// MinClosed is how many gates must close. Zero means all of them.
	MinClosed int `json:"min_closed,omitempty"`
	// AllP0 also asks for every P0 gate closed.
	AllP0 bool `json:"all_p0,omitempty"`
}

// Set is a list of gates judged together.
type Set struct {
	// Name titles the reports, such as "Launch gates".
	Name string `json:"name"`
	// Verdict labels the score line's verdict. Default: "READY".
	Verdict string `json:"verdict,omitempty"`
	// Rule decides pass or fail. Default: every gate closed.
	Rule Rule `json:"rule"`
	// Gates are run concurrently.
	Gates []Gate `json:"gates"`
	// Timeout bounds each check whose gate sets none. Default:
	// DefaultTimeout.
	Timeout time.Duration `json:"-"`
	// Parallel bounds how many checks run at once. Default: 8.
	Parallel int `json:"-"`
}

// Validate reports a set that cannot be judged: ErrInvalidSet with the
// reason.
func (s *Set) Validate() error {
	seen := map[string]bool{}
	for i, g := range s.Gates {
		switch {
		case g.ID == "":
			return fmt.Errorf("%w: gate %d has no id", ErrInvalidSet, i+1)
		case seen[g.ID]:
			return fmt.Errorf("%w: gate id %q appears twice", ErrInvalidSet, g.ID)
		case g.Priority != "" && g.Priority != P0 && g.Priority != P1 && g.Priority != P2:
			return fmt.Errorf("%w: gate %s: priority %q is not P0, P1 or P2", ErrInvalidSet, g.ID, g.Priority)
		}
		seen[g.ID] = true
	}
	if s.Rule.MinClosed < 0 || s.Rule.MinClosed > len(s.Gates) {
		return fmt.Errorf("%w: rule asks for %d closed of %d gates", ErrInvalidSet, s.Rule.MinClosed, len(s.Gates))
	}
	return nil
}

// Run runs every check, each under its timeout, and judges the set. It
// returns ErrInvalidSet for a set that cannot be judged.
func (s *Set) Run(ctx context.Context) (*Report, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	results := make([]GateResult, len(s.Gates))
	sem := make(chan struct{}, cmp.Or(s.Parallel, 8))
	var wg sync.WaitGroup
	for i, g := range s.Gates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = GateResult{Gate: g, Result: runOne(ctx, g, cmp.Or(g.Timeout, s.Timeout, DefaultTimeout))}
		}()
	}
	wg.Wait()
	return newReport(s, results), nil
}

// runOne runs g's check under timeout. A check that overruns is reported
// open even if it ignores its context; one that panics is open too.
func runOne(ctx context.Context, g Gate, timeout time.Duration) Result {
	if g.Check == nil {
		return Result{Status: Open, Reason: "no check"}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- openf("check panicked: %v", p)
			}
		}()
		done <- g.Check.Run(ctx)
	}()
	var r Result
	select {
	case r = <-done:
		if ctx.Err() != nil && r.Status == Closed {
			r = openf("check overran its timeout of %s", timeout)
		}
	case <-ctx.Done():
		r = openf("check overran its timeout of %s", timeout)
	}
	if !r.Status.valid() {
		r = openf("check returned unknown status %q", r.Status)
	}
	r.Duration = time.Since(start)
	return r
}
