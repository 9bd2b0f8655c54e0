package dlq

import (
	"context"
	"fmt"
	"time"
)

// maintain rescues expired leases at the configured interval. Every worker
// runs it; row locks with SKIP LOCKED keep two workers from rescuing one
// job twice.
func (r *runner) maintain() {
	ctx := r.loopsCtx
	rescue := time.NewTicker(r.c.cfg.RescueInterval)
	defer rescue.Stop()
	r.rescue(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-rescue.C:
			r.rescue(ctx)
		}
	}
}

func (r *runner) rescue(ctx context.Context) {
	queues, err := r.c.rescue(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.c.cfg.Logger.Warn("dlq: rescue failed", "err", err)
		}
		return
	}
	if len(queues) > 0 {
		r.c.cfg.Logger.Warn("dlq: rescued jobs whose lease expired", "jobs", len(queues))
	}
	for _, q := range queues {
		r.wakeQueue(q)
	}
}

// rescueSQL compares leases with the database's clock, which set them, so
// an instance whose own clock runs ahead cannot take a live lease.
const rescueSQL = `
WITH expired AS (
    SELECT id FROM platform.dlq_jobs
    WHERE state = 'running' AND lease_until < now()
    ORDER BY lease_until
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.dlq_jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END,
    finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
    run_at = now(), lease_until = NULL,
    errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', now(), 'error', $1::text))
FROM expired WHERE j.id = expired.id
RETURNING j.queue`

// Rescue makes running jobs whose lease has expired by the database's
// clock available again — their worker died or lost the database —
// recording the lost attempt in their history (a job out of attempts goes
// dead). It returns how many it rescued. Started clients run it every
// Config.RescueInterval; it needs the system role.
func (c *Client) Rescue(ctx context.Context) (int, error) {
	queues, err := c.rescue(ctx)
	return len(queues), err
}

func (c *Client) rescue(ctx context.Context) ([]string, error) {
	rows, err := c.db.Query(ctx, rescueSQL, ErrLeaseExpired.Error())
	if err != nil {
		return nil, fmt.Errorf("dlq: rescue: %w", err)
	}
	var queues []string
	for rows.Next() {
		var q string
		if err := rows.Scan(&q); err != nil {
			rows.Close()
			return nil, fmt.Errorf("dlq: rescue: %w", err)
		}
		queues = append(queues, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dlq: rescue: %w", err)
	}
	return queues, nil
}
