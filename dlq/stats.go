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

const statsSQL = `
SELECT queue,
       count(*) FILTER (WHERE state = 'available' AND run_at <= $1),
       count(*) FILTER (WHERE state = 'running'),
       count(*) FILTER (WHERE state = 'available' AND run_at > $1 AND attempt = 0),
       count(*) FILTER (WHERE state = 'available' AND run_at > $1 AND attempt > 0),
       count(*) FILTER (WHERE state = 'dead'),
       min(run_at) FILTER (WHERE state = 'available' AND run_at <= $1)
FROM platform.dlq_jobs
WHERE state IN ('available', 'running', 'dead')
GROUP BY queue`

// Stats returns the depth of every queue that has jobs or that the client
// works, sorted by name. Through the system role it counts every tenant;
// through the app role, none (row-level security: no tenant is set).
func (c *Client) Stats(ctx context.Context) ([]QueueStats, error) {
	now := c.cfg.Now()
	rows, err := c.pool.Query(ctx, statsSQL, now)
	if err != nil {
		return nil, fmt.Errorf("dlq: stats: %w", err)
	}
	defer rows.Close()
	byQueue := map[string]QueueStats{}
	for rows.Next() {
		var s QueueStats
		var oldest *time.Time
		if err := rows.Scan(&s.Queue, &s.Available, &s.Running, &s.Scheduled, &s.Retrying, &s.Dead, &oldest); err != nil {
			return nil, fmt.Errorf("dlq: stats: %w", err)
		}
		if oldest != nil {
			s.OldestAvailableAge = max(now.Sub(*oldest), 0)
			s.OldestAvailableSeconds = s.OldestAvailableAge.Seconds()
		}
		byQueue[s.Queue] = s
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
