package dlq

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// notifySQL notifies the workers of the queues in $1.
const notifySQL = `SELECT pg_notify('` + notifyChannel + `', q) FROM unnest($1::text[]) AS q`

// notifier wakes the workers of queues after enqueues committed through a
// Client, coalescing: while one notification is on its way, the queues of
// further enqueues gather for the next. PostgreSQL serializes the commits
// of transactions that NOTIFY (one lock per database, held through the
// commit's WAL flush), so notifying in every enqueue transaction would cap
// enqueues at one per disk flush; a notification outside them costs one
// small statement per burst instead. Bursts are at least FetchCooldown
// apart, as River paces its insert notifications: a queue that was just
// fetched waits out its cooldown before fetching again anyway, so a
// notification sooner than that would only cost a commit and wake no one
// earlier.
type notifier struct {
	c *Client

	mu       sync.Mutex
	pending  map[string]struct{}
	flushing bool
}

func (n *notifier) notify(queues ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pending == nil {
		n.pending = map[string]struct{}{}
	}
	for _, q := range queues {
		n.pending[q] = struct{}{}
	}
	if !n.flushing {
		n.flushing = true
		go n.flush()
	}
}

// flush sends notifications until none is pending. A failure is only
// logged: the workers' polling finds the jobs.
func (n *notifier) flush() {
	for {
		n.mu.Lock()
		queues := make([]string, 0, len(n.pending))
		for q := range n.pending {
			queues = append(queues, q)
		}
		clear(n.pending)
		if len(queues) == 0 {
			n.flushing = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := n.c.db.Exec(ctx, notifySQL, queues); err != nil {
			n.c.cfg.Logger.Warn("dlq: notify failed; workers will find the jobs by polling", slog.Any("queues", queues), "err", err)
		}
		cancel()
		// The enqueues of the next FetchCooldown share one notification.
		time.Sleep(n.c.cfg.FetchCooldown)
	}
}

// txNotifyLimiter decides which queues an EnqueueTx notifies in the
// caller's transaction: each queue at most once per FetchCooldown, as
// River limits its insert notifications. Every transaction that NOTIFYs
// takes the database's notify lock at commit, so a request path that
// enqueues in each of its transactions would otherwise run its commits one
// at a time. A job whose transaction skipped the NOTIFY is still found by
// the next fetch of its queue: a worker's queue loop fetches again after
// every notification and every job it finishes, and at the latest after
// PollInterval (the bound when the notifying transaction rolled back, or
// the skipped one committed long after it).
type txNotifyLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due returns the queues of queues (sorted, without repeats) not notified
// in the last every, and marks them notified at now.
func (l *txNotifyLimiter) due(queues []string, now time.Time, every time.Duration) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	var out []string
	for _, q := range uniq(queues) {
		if t, ok := l.last[q]; ok && now.Sub(t) < every {
			continue
		}
		l.last[q] = now
		out = append(out, q)
	}
	return out
}

func uniq(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}
