package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/internal/pgtest"
)

// A run whose step result PostgreSQL refuses executes together with
// healthy runs of another tenant, their checkpoints queued in the same
// group commit. Only the bad runs fail, with the reason; the healthy
// runs' checkpoints survive and their steps are not executed again.
func TestARefusedValueFailsOnlyItsOwnRun(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	rt := newRuntime(t, db, func(c *durable.Config) { c.Concurrency = 16 })
	// Every value jsonb itself refuses is caught before the batch now
	// (internal/pgtext), so a trigger stands in for a refusal only the
	// server can make: a data exception for one particular result.
	_, err := db.Admin.Exec(ctx, `
CREATE FUNCTION platform.refuse_marked_output() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.output = '"refused by the server"'::jsonb THEN
        RAISE EXCEPTION 'value refused by a trigger' USING ERRCODE = '22023';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER refuse_marked_output BEFORE INSERT ON platform.durable_steps
    FOR EACH ROW EXECUTE FUNCTION platform.refuse_marked_output();`)
	require.NoError(t, err)

	var mu sync.Mutex
	executions := map[string]int{} // of step "first", by run
	var inFlight, returned atomic.Int32
	release, blockerGo := make(chan struct{}), make(chan struct{})
	_, err = durable.Register(rt, "batch", func(ctx context.Context, kind string) (string, error) {
		run, _ := durable.CurrentRun(ctx)
		out, err := durable.Step(ctx, "first", func(context.Context) (json.RawMessage, error) {
			mu.Lock()
			executions[run.RunID]++
			mu.Unlock()
			inFlight.Add(1)
			defer returned.Add(1)
			if kind == "blocker" {
				<-blockerGo
			} else {
				<-release
			}
			switch kind {
			case "nul": // JSON writes "\u0000", which jsonb refuses: caught before the batch
				return json.Marshal("nul\x00inside")
			case "surrogate": // a lone surrogate escape, which jsonb refuses
				return json.RawMessage(`"\ud800"`), nil
			case "overflow": // beyond numeric's range: caught before the batch
				return json.RawMessage(`1e1000000`), nil
			case "refused": // refused by the server inside the batch
				return json.RawMessage(`"refused by the server"`), nil
			}
			return json.Marshal("ok " + run.RunID)
		})
		if err != nil {
			return "", err
		}
		var s string
		_ = json.Unmarshal(out, &s)
		return durable.Step(ctx, "second", func(context.Context) (string, error) { return s + "!", nil })
	})
	require.NoError(t, err)
	work(t, rt)

	_, err = rt.Start(ctxA, "batch", "blocker", durable.WithRunID("blocker"))
	require.NoError(t, err)
	var healthy []string
	for i := range 6 {
		run, err := rt.Start(ctxB, "batch", "healthy", durable.WithRunID(fmt.Sprintf("healthy-%d", i)))
		require.NoError(t, err)
		healthy = append(healthy, run.ID)
	}
	_, err = rt.Start(ctxA, "batch", "nul", durable.WithRunID("nul"))
	require.NoError(t, err)
	_, err = rt.Start(ctxA, "batch", "surrogate", durable.WithRunID("surrogate"))
	require.NoError(t, err)
	_, err = rt.Start(ctxA, "batch", "overflow", durable.WithRunID("overflow"))
	require.NoError(t, err)
	_, err = rt.Start(ctxA, "batch", "refused", durable.WithRunID("refused"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return inFlight.Load() == 11 }, 30*time.Second, 5*time.Millisecond)

	// Hold the blocker's run row, so that its checkpoint leads a batch
	// that waits on the lock while every other checkpoint queues behind
	// it: they then go together as the next batch.
	lock, err := db.Admin.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(ctx) }()
	_, err = lock.Exec(ctx, "SELECT 1 FROM platform.durable_runs WHERE id = 'blocker' FOR UPDATE")
	require.NoError(t, err)
	close(blockerGo)
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, db.Admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%durable_steps%'`).Scan(&waiting))
		return waiting == 1
	}, 30*time.Second, 5*time.Millisecond, "the blocker's checkpoint waits for the lock")
	close(release)
	require.Eventually(t, func() bool { return returned.Load() == 11 }, 30*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // for the last checkpoints to queue
	require.NoError(t, lock.Commit(ctx))

	for _, id := range append(healthy, "blocker") {
		tenant := tenantB
		if id == "blocker" {
			tenant = tenantA
		}
		run := waitRun(t, rt, tenant, id)
		require.Equal(t, durable.StatusCompleted, run.Status, "%s: %s", id, run.Error)
		steps, err := rt.StepsForTenant(ctx, tenant, id)
		require.NoError(t, err)
		require.Equal(t, []string{"first", "second"}, stepNames(steps), id)
		require.Equal(t, int64(1), run.Attempt, "%s was never re-claimed", id)
	}
	nul := waitRun(t, rt, tenantA, "nul")
	require.Equal(t, durable.StatusFailed, nul.Status)
	require.Contains(t, nul.Error, `result of step "first"`)
	require.Contains(t, nul.Error, "NUL")
	surrogate := waitRun(t, rt, tenantA, "surrogate")
	require.Equal(t, durable.StatusFailed, surrogate.Status)
	require.Contains(t, surrogate.Error, durable.ErrEncode.Error())
	overflow := waitRun(t, rt, tenantA, "overflow")
	require.Equal(t, durable.StatusFailed, overflow.Status)
	require.Contains(t, overflow.Error, "numeric range")
	refused := waitRun(t, rt, tenantA, "refused")
	require.Equal(t, durable.StatusFailed, refused.Status)
	require.Contains(t, refused.Error, "checkpoint refused by PostgreSQL: value refused by a trigger")
	for _, id := range []string{"nul", "surrogate", "overflow", "refused"} {
		require.Zero(t, countRows(t, db, "durable_steps", id), "no checkpoint of %s", id)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, n := range executions {
		require.Equal(t, 1, n, "step first of %s executed once", id)
	}
	require.Len(t, executions, 11)
}

// Error texts holding NUL or invalid UTF-8, which a text column refuses,
// are stored cleaned, and the run they belong to fails as it should.
func TestUnstorableErrorTextsAreStoredCleaned(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	rt := newRuntime(t, db, nil)
	_, err := durable.Register(rt, "bad-error", func(ctx context.Context, in int) (int, error) {
		_, err := durable.Step(ctx, "fails", func(context.Context) (int, error) {
			return 0, durable.Permanent(errors.New("bad\x00text\xff"))
		})
		return 0, err
	})
	require.NoError(t, err)
	registerVotes(t, rt, durable.NoTimeout)
	work(t, rt)

	run, err := rt.Start(ctxA, "bad-error", 1)
	require.NoError(t, err)
	failed := waitRun(t, rt, tenantA, run.ID)
	require.Equal(t, durable.StatusFailed, failed.Status)
	require.Contains(t, failed.Error, "bad\uFFFDtext\uFFFD")
	steps, err := rt.Steps(ctxA, run.ID)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, "bad\uFFFDtext\uFFFD", steps[0].Error)
	require.Equal(t, int64(1), failed.Attempt, "failed at once, not replayed")

	waiting, err := rt.Start(ctxA, "votes", 0)
	require.NoError(t, err)
	require.NoError(t, rt.Cancel(ctxA, waiting.ID, "gone\x00away"))
	cancelled, err := rt.Get(ctxA, waiting.ID)
	require.NoError(t, err)
	require.Equal(t, "gone\uFFFDaway", cancelled.Error)

	// Names and payloads a column cannot hold are refused up front.
	require.ErrorIs(t, rt.Signal(ctxA, waiting.ID, "vote", "nul\x00"), durable.ErrEncode)
	_, err = rt.Start(ctxA, "votes", "nul\x00")
	require.ErrorIs(t, err, durable.ErrEncode)
	_, err = durable.Register(rt, "bad\x00name", func(context.Context, int) (int, error) { return 0, nil })
	require.ErrorIs(t, err, durable.ErrInvalidName)
}
