package durable_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// Two runtimes whose process clocks are an hour off, one behind and one
// ahead: the one behind keeps its lease on a step that outlasts several
// leases, and the one ahead, polling all along, never takes the run. Both
// would happen if leases were computed from the process clock.
func TestProcessClocksFarOffNeitherStealNorLoseLeases(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	behind := func() time.Time { return time.Now().Add(-time.Hour) }
	ahead := func() time.Time { return time.Now().Add(time.Hour) }

	started := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var leaseChecks []bool
	hold := func(ctx context.Context) {
		once.Do(func() { close(started) })
		// Outlast three leases, looking at the lease on the database's
		// clock now and then.
		for range 15 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			var live bool
			if err := db.Admin.QueryRow(context.Background(), `SELECT lease_until > now() AND lease_until <= now() + interval '1 second'
				FROM platform.durable_runs WHERE owner = 'behind'`).Scan(&live); err == nil {
				mu.Lock()
				leaseChecks = append(leaseChecks, live)
				mu.Unlock()
			}
		}
	}
	owner := newRuntime(t, db, func(c *durable.Config) {
		c.Clock, c.WorkerID = behind, "behind"
		c.Lease, c.Heartbeat = time.Second, 100*time.Millisecond
	})
	registerCounted(t, owner, db, hold)
	run, err := owner.Start(ctxA, "counted", 1)
	require.NoError(t, err)
	now := dbNow(t, db)
	require.WithinDuration(t, now, run.CreatedAt, time.Minute, "recorded on the database's clock")
	work(t, owner)
	<-started

	rival := newRuntime(t, db, func(c *durable.Config) {
		c.Clock, c.WorkerID = ahead, "ahead"
		c.Lease = time.Second
	})
	registerCounted(t, rival, db, func(context.Context) {})
	work(t, rival)

	done := waitRun(t, owner, tenantA, run.ID)
	require.Equal(t, durable.StatusCompleted, done.Status, done.Error)
	require.Equal(t, int64(1), done.Attempt, "the rival never took the run")
	require.Equal(t, map[string]int{"effect": 1}, effects(t, db, run.ID))
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, leaseChecks)
	for _, live := range leaseChecks {
		require.True(t, live, "the lease ran at most one Lease ahead of the database's clock, never behind it")
	}
	require.WithinDuration(t, dbNow(t, db), done.FinishedAt, time.Minute)
}
