package webhooksig

import (
	"sync"
	"testing"
	"time"
)

// TestCoarseClockStates walks the default clock's states with a timer that
// never fires in the test, ticking by hand: a reading is cached between
// ticks, a tick refreshes it, a period without a reading stops the clock,
// and the next reading after a stop is time.Now's.
func TestCoarseClockStates(t *testing.T) {
	c := &coarseClock{period: time.Hour}
	before := time.Now()
	if got := c.now(); got.Before(before.Round(0)) || c.state.Load() != clockUsed {
		t.Fatalf("first reading %v (before %v), state %d", got, before, c.state.Load())
	}
	defer c.timer.Load().Stop()

	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	c.nanos.Store(old.UnixNano())
	if got := c.now(); !got.Equal(old) {
		t.Fatalf("between ticks the clock read %v, want the cached %v", got, old)
	}

	before = time.Now()
	c.tick()
	if got := c.now(); got.Before(before.Round(0)) {
		t.Fatalf("after a tick the clock read %v, before %v", got, before)
	}
	c.tick() // read since the last tick: stays armed
	if s := c.state.Load(); s != clockUnused {
		t.Fatalf("state %d after a tick following a reading, want unused", s)
	}
	c.tick() // not read since the last tick: stops
	if s := c.state.Load(); s != clockStopped {
		t.Fatalf("state %d after an idle period, want stopped", s)
	}

	c.nanos.Store(old.UnixNano())
	before = time.Now()
	if got := c.now(); got.Before(before.Round(0)) || c.state.Load() != clockUsed {
		t.Fatalf("reading after a stop %v (before %v), state %d", got, before, c.state.Load())
	}
}

// TestCoarseClockConcurrent reads a fast-ticking clock from several
// goroutines: no reading is ahead of time.Now or far behind it, and the
// clock stops once nobody reads it.
func TestCoarseClockConcurrent(t *testing.T) {
	c := &coarseClock{period: time.Millisecond}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2000 {
				before := time.Now().Round(0)
				got := c.now()
				after := time.Now().Round(0)
				// Behind by at most a period plus the timer's lateness,
				// which a loaded machine can stretch; 10 s means stuck.
				if got.After(after) || got.Before(before.Add(-10*time.Second)) {
					t.Errorf("reading %v outside [%v - 10s, %v]", got, before, after)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for c.state.Load() != clockStopped {
		if time.Now().After(deadline) {
			t.Fatalf("the clock still runs (state %d) a minute after its last reading", c.state.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
