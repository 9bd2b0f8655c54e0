package sweep

import (
	"context"
	"time"
)

// Drain runs batch until one run affects fewer than size rows, which means
// the backlog is worked off, and returns the rows affected in all. Each
// batch is a statement (and transaction) of its own, so a large backlog
// never holds its locks for long. Drain stops at the first error and
// returns it with the total so far.
func Drain(ctx context.Context, size int64, batch func(context.Context) (int64, error)) (int64, error) {
	var total int64
	for {
		n, err := batch(ctx)
		total += n
		if err != nil || n < size {
			return total, err
		}
	}
}

// Every calls sweep at once and then every interval, until ctx is done.
// A sweep that outlasts the interval is followed by the next one at once
// rather than by a pile of them.
func Every(ctx context.Context, interval time.Duration, sweep func(context.Context)) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
