package dlq

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Backoff says how long a job waits before its next attempt after failing
// attempt number attempt (1 for the first).
type Backoff interface {
	Delay(attempt int) time.Duration
}

// BackoffFunc adapts a function to Backoff.
type BackoffFunc func(attempt int) time.Duration

// Delay calls f.
func (f BackoffFunc) Delay(attempt int) time.Duration { return f(attempt) }

// Exponential is the default Backoff: Base·2^(attempt-1), capped at Max,
// then spread by ±Jitter so that jobs failing together do not retry
// together.
type Exponential struct {
	// Base is the delay after the first failure. Default 1s.
	Base time.Duration
	// Max caps the delay before jitter. Default 1h.
	Max time.Duration
	// Jitter is the fraction of the delay added or removed at random, in
	// [0, 1). Default 0 (set it; DefaultBackoff uses 0.1).
	Jitter float64
	// Rand returns a float in [0, 1); tests make it fixed. Default
	// math/rand/v2.Float64.
	Rand func() float64
}

// DefaultBackoff is the Backoff a Config without one uses: 1s, 2s, 4s, …
// up to 1h, ±10%.
var DefaultBackoff = Exponential{Base: time.Second, Max: time.Hour, Jitter: 0.1}

// Validate reports whether e can be used.
func (e Exponential) Validate() error {
	if e.Base < 0 || e.Max < 0 || (e.Max > 0 && e.Base > e.Max) {
		return fmt.Errorf("%w: backoff base %s and max %s", ErrInvalidConfig, e.Base, e.Max)
	}
	if e.Jitter < 0 || e.Jitter >= 1 || math.IsNaN(e.Jitter) {
		return fmt.Errorf("%w: backoff jitter %v outside [0, 1)", ErrInvalidConfig, e.Jitter)
	}
	return nil
}

// Delay implements Backoff.
func (e Exponential) Delay(attempt int) time.Duration {
	base, limit := e.Base, e.Max
	if base == 0 {
		base = time.Second
	}
	if limit == 0 {
		limit = time.Hour
	}
	attempt = max(attempt, 1)
	d := limit
	// 2^62 ns overflows time.Duration arithmetic soon after; the cap has
	// long been reached by then.
	if attempt <= 62 {
		if grown := float64(base) * math.Pow(2, float64(attempt-1)); grown < float64(limit) {
			d = time.Duration(grown)
		}
	}
	if e.Jitter > 0 {
		random := e.Rand
		if random == nil {
			random = rand.Float64
		}
		d += time.Duration(float64(d) * e.Jitter * (2*random() - 1))
	}
	return d
}
