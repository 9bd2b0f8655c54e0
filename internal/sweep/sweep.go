package sweep

import (
	"context"
	"log/slog"
	"time"
)

// Drain runs batch until one run affects fewer than size rows, which means
// the backlog is worked off, and returns the rows affected in all. Each
// batch is a statement (and transaction) of its own, so a large backlog
// never holds its locks for long. Drain stops at the first error and
// returns it with the total so far.
func Drain(ctx context.Context, size int64, batch func(context.Context) (int64, error)) (int64, error) {
	return DrainPaced(ctx, size, 0, batch)
}

// DrainPaced is Drain with a pause between two batches (none when pause is
// not positive), so that a large backlog is deleted beside the work rather
// than in its way. A context that ends during a pause stops the drain at
// once with the context's error and the total so far.
func DrainPaced(ctx context.Context, size int64, pause time.Duration, batch func(context.Context) (int64, error)) (int64, error) {
	var total int64
	for first := true; ; first = false {
		if !first {
			if err := wait(ctx, pause); err != nil {
				return total, err
			}
		}
		n, err := batch(ctx)
		total += n
		if err != nil || n < size {
			return total, err
		}
	}
}

// wait waits d, or until ctx is done, then returning ctx's error.
func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
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

// Run is every package's Sweeper.Run: it calls once at once and then every
// interval until ctx is done, logs a failure (unless ctx ended) or, at Info,
// how many rows a pass removed, and returns ctx's error. what names the
// rows in the log, as "idempotency: swept expired keys".
func Run(ctx context.Context, interval time.Duration, log *slog.Logger, what string, once func(context.Context) (int64, error)) error {
	Every(ctx, interval, func(ctx context.Context) {
		n, err := once(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.ErrorContext(ctx, what+": sweep failed", "error", err)
		case err == nil && n > 0:
			log.InfoContext(ctx, what, "rows", n)
		}
	})
	return ctx.Err()
}
