package dlq

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// QueueStats is the depth of one queue.
type QueueStats struct {
	Queue string `json:"queue"`
	// Available jobs may run now.
	Available int64 `json:"available"`
	// Running jobs are leased by a worker.
	Running int64 `json:"running"`
	// Scheduled jobs wait for their RunAt before their first attempt.
	Scheduled int64 `json:"scheduled"`
	// Retrying jobs failed and wait for their backoff.
	Retrying int64 `json:"retrying"`
	// Dead jobs are in the dead-letter queue.
	Dead int64 `json:"dead"`
	// OldestAvailableAge is how long the oldest available job has been
	// runnable; zero when none is.
	OldestAvailableAge time.Duration `json:"-"`
	// OldestAvailableSeconds is OldestAvailableAge in seconds, for JSON.
	OldestAvailableSeconds float64 `json:"oldest_available_age_seconds"`
}

// statsSQL splits due from scheduled jobs, and ages the oldest due one,
// by the database's clock, which also set their run_at. Waiting jobs
// (available and dead) are read through the tenant index, running ones
// through the lease index: each index holds only its own states, so that
// a claim and a completion write as few index entries as they can.
var statsSQL = forms(`
SELECT queue,
       count(*) FILTER (WHERE state = 'available' AND run_at <= now()),
       count(*) FILTER (WHERE state = 'running'),
       count(*) FILTER (WHERE state = 'available' AND run_at > now() AND attempt = 0),
       count(*) FILTER (WHERE state = 'available' AND run_at > now() AND attempt > 0),
       count(*) FILTER (WHERE state = 'dead'),
       (extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available' AND run_at <= now())) * 1e6)::bigint
FROM (
    SELECT queue, state, run_at, attempt FROM platform.dlq_jobs
    WHERE state IN ('available', 'dead') AND {tenant $1}
    UNION ALL
    SELECT queue, state, run_at, attempt FROM platform.dlq_jobs
    WHERE state = 'running' AND {tenant $1}
) j
GROUP BY queue`)

// Stats returns the depth of every queue that has jobs or that the client
// works, sorted by name. With no tenant in ctx it counts every tenant's
// jobs through the system role (and none through the app role: row-level
// security); with a tenant in ctx, that tenant's.
func (c *Client) Stats(ctx context.Context) ([]QueueStats, error) {
	s := c.scope(ctx)
	rows, err := s.query(ctx, s.sql(statsSQL), s.tenant)
	if err != nil {
		return nil, fmt.Errorf("dlq: stats: %w", err)
	}
	defer rows.Close()
	byQueue := map[string]QueueStats{}
	for rows.Next() {
		var q QueueStats
		var oldest *int64
		if err := rows.Scan(&q.Queue, &q.Available, &q.Running, &q.Scheduled, &q.Retrying, &q.Dead, &oldest); err != nil {
			return nil, fmt.Errorf("dlq: stats: %w", err)
		}
		if oldest != nil {
			q.OldestAvailableAge = max(time.Duration(*oldest)*time.Microsecond, 0)
			q.OldestAvailableSeconds = q.OldestAvailableAge.Seconds()
		}
		byQueue[q.Queue] = q
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dlq: stats: %w", err)
	}
	for name := range c.cfg.Queues {
		if _, ok := byQueue[name]; !ok {
			byQueue[name] = QueueStats{Queue: name}
		}
	}
	for _, name := range c.cfg.KnownQueues {
		if _, ok := byQueue[name]; !ok {
			byQueue[name] = QueueStats{Queue: name}
		}
	}
	stats := make([]QueueStats, 0, len(byQueue))
	for _, s := range byQueue {
		stats = append(stats, s)
	}
	slices.SortFunc(stats, func(a, b QueueStats) int {
		switch {
		case a.Queue < b.Queue:
			return -1
		case a.Queue > b.Queue:
			return 1
		}
		return 0
	})
	return stats, nil
}
