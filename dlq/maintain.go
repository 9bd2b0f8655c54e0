package dlq

import (
	"context"
	"fmt"
	"time"

	"github.com/dealix/platform/internal/sweep"
)

// maintain rescues expired leases and deletes finished jobs past their
// retention, at the configured intervals. Every worker runs it; row locks
// with SKIP LOCKED keep two workers from rescuing one job twice.
func (r *runner) maintain() {
	ctx := r.loopsCtx
	rescue := time.NewTicker(r.c.cfg.RescueInterval)
	defer rescue.Stop()
	cleanup := time.NewTicker(r.c.cfg.CleanupInterval)
	defer cleanup.Stop()
	r.rescue(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-rescue.C:
			r.rescue(ctx)
		case <-cleanup.C:
			if n, err := r.c.Cleanup(ctx); err != nil && ctx.Err() == nil {
				r.c.cfg.Logger.Warn("dlq: cleanup failed", "err", err)
			} else if n > 0 {
				r.c.cfg.Logger.Info("dlq: cleaned up finished jobs", "deleted", n)
			}
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

const rescueSQL = `
WITH expired AS (
    SELECT id FROM platform.dlq_jobs
    WHERE state = 'running' AND lease_until < $1
    ORDER BY lease_until
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE platform.dlq_jobs j
SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'available' END,
    finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN $1::timestamptz END,
    run_at = $1, lease_until = NULL,
    errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt, 'at', $1::timestamptz, 'error', $2::text))
FROM expired WHERE j.id = expired.id
RETURNING j.queue`

// Rescue makes running jobs whose lease has expired available again — their
// worker died or lost the database — recording the lost attempt in their
// history (a job out of attempts goes dead). It returns how many it
// rescued. Started clients run it every Config.RescueInterval.
func (c *Client) Rescue(ctx context.Context) (int, error) {
	queues, err := c.rescue(ctx)
	return len(queues), err
}

func (c *Client) rescue(ctx context.Context) ([]string, error) {
	rows, err := c.pool.Query(ctx, rescueSQL, c.cfg.Now(), ErrLeaseExpired.Error())
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

const cleanupSQL = `
DELETE FROM platform.dlq_jobs WHERE id IN (
    SELECT id FROM platform.dlq_jobs
    WHERE (state IN ('completed', 'discarded') AND finalized_at < $1)
       OR (state = 'dead' AND finalized_at < $2)
    LIMIT $3)`

const cleanupBatch = 5000

// Cleanup deletes completed and discarded jobs older than Config.Retention
// and, when Config.DeadRetention is set, dead jobs older than that, in
// batches. It returns how many it deleted. Started clients run it every
// Config.CleanupInterval.
func (c *Client) Cleanup(ctx context.Context) (int64, error) {
	now := c.cfg.Now()
	finishedBefore := now.Add(-c.cfg.Retention)
	deadBefore := time.Time{} // nothing is older: dead jobs are kept
	if c.cfg.DeadRetention > 0 {
		deadBefore = now.Add(-c.cfg.DeadRetention)
	}
	total, err := sweep.Drain(ctx, cleanupBatch, func(ctx context.Context) (int64, error) {
		tag, err := c.pool.Exec(ctx, cleanupSQL, finishedBefore, deadBefore, cleanupBatch)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return total, fmt.Errorf("dlq: cleanup: %w", err)
	}
	return total, nil
}
