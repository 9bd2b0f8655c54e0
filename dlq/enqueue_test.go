package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

func TestEnqueueStoresEveryField(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	clock := newClock()
	app := newClient(t, db.App, dlq.Config{Now: clock.Now, MaxAttempts: 7})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()

	runAt := clock.Now().Add(time.Hour)
	res, err := app.Enqueue(ctx, dlq.JobParams{
		Tenant: tenantA, Queue: "email", Kind: "welcome", Payload: map[string]string{"to": "a@example.com"},
		Priority: 3, RunAt: runAt, MaxAttempts: 4, DedupKey: "welcome-a",
	})
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	require.Positive(t, res.ID)

	info := jobInfo(t, sys, res.ID)
	require.Equal(t, tenantA, info.Tenant)
	require.Equal(t, "email", info.Queue)
	require.Equal(t, "welcome", info.Kind)
	require.JSONEq(t, `{"to":"a@example.com"}`, string(info.Payload))
	require.Equal(t, int16(3), info.Priority)
	require.True(t, runAt.Equal(info.RunAt))
	require.Equal(t, 4, info.MaxAttempts)
	require.Equal(t, "welcome-a", info.DedupKey)
	require.Equal(t, dlq.StateAvailable, info.State)
	require.Equal(t, 0, info.Attempt)
	require.True(t, clock.Now().Equal(info.CreatedAt))

	// Defaults: now, the client's max attempts, an empty object.
	res, err = app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "email"})
	require.NoError(t, err)
	info = jobInfo(t, sys, res.ID)
	require.Equal(t, 7, info.MaxAttempts)
	require.True(t, clock.Now().Equal(info.RunAt))
	require.JSONEq(t, `{}`, string(info.Payload))
}

func TestEnqueueTxIsAtomicWithTheCallersWrites(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createEffects(t, db)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()

	rollback := errors.New("business rule failed")
	err := rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO platform.test_effects (tenant_id, job_id) VALUES ($1, 0)", tenantA); err != nil {
			return err
		}
		if _, err := app.EnqueueTx(ctx, tx, dlq.JobParams{Tenant: tenantA, Queue: "email"}); err != nil {
			return err
		}
		return rollback
	})
	require.ErrorIs(t, err, rollback)
	require.Zero(t, countJobs(t, db.System, "true"), "a rolled-back EnqueueTx leaves no job")

	err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		_, err := app.EnqueueTx(ctx, tx, dlq.JobParams{Tenant: tenantA, Queue: "email"})
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countJobs(t, db.System, "true"))
}

func TestEnqueueTxCannotWriteAnotherTenantsJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	err := rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		_, err := app.EnqueueTx(ctx, tx, dlq.JobParams{Tenant: tenantB, Queue: "email"})
		return err
	})
	require.ErrorContains(t, err, "row-level security")
	require.Zero(t, countJobs(t, db.System, "true"))

	// The app role sees only its tenant's jobs.
	_, err = app.Enqueue(ctx, dlq.JobParams{Tenant: tenantB, Queue: "email"})
	require.NoError(t, err)
	require.Zero(t, countJobs(t, db.App, "true"), "no tenant set: no rows")
}

func TestDedupKeyMakesOneJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()

	first, err := app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "webhooks", DedupKey: "evt_1", Payload: json.RawMessage(`{"n":1}`)})
	require.NoError(t, err)
	second, err := app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "webhooks", DedupKey: "evt_1", Payload: json.RawMessage(`{"n":2}`)})
	require.NoError(t, err)
	require.True(t, second.Duplicate)
	require.Equal(t, first.ID, second.ID)
	require.Equal(t, 1, countJobs(t, db.System, "true"))

	// The key is per tenant and per queue; within one batch a repeated
	// key is a duplicate of the batch's own job.
	res, err := app.EnqueueMany(ctx, []dlq.JobParams{
		{Tenant: tenantA, Queue: "email", DedupKey: "evt_1"},
		{Tenant: tenantA, Queue: "webhooks", DedupKey: "evt_1"},
		{Tenant: tenantA, Queue: "email", DedupKey: "evt_2"},
		{Tenant: tenantA, Queue: "email", DedupKey: "evt_2"},
		{Tenant: tenantA, Queue: "email"},
	})
	require.NoError(t, err)
	require.Len(t, res, 5)
	require.False(t, res[0].Duplicate)
	require.Equal(t, dlq.Inserted{ID: first.ID, Duplicate: true}, res[1])
	require.False(t, res[2].Duplicate)
	require.Equal(t, dlq.Inserted{ID: res[2].ID, Duplicate: true}, res[3])
	require.False(t, res[4].Duplicate)
	_, err = app.Enqueue(ctx, dlq.JobParams{Tenant: tenantB, Queue: "webhooks", DedupKey: "evt_1"})
	require.NoError(t, err)
	require.Equal(t, 5, countJobs(t, db.System, "true"))

	var payload string
	require.NoError(t, db.System.QueryRow(ctx, "SELECT payload::text FROM platform.dlq_jobs WHERE id = $1", first.ID).Scan(&payload))
	require.JSONEq(t, `{"n":1}`, payload, "the duplicate changed nothing")
}

func TestEnqueueManyReturnsIDsInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()
	params := make([]dlq.JobParams, 50)
	for i := range params {
		params[i] = dlq.JobParams{Tenant: tenantA, Queue: "bulk", Payload: map[string]int{"i": i}}
	}
	res, err := app.EnqueueMany(ctx, params)
	require.NoError(t, err)
	for i, r := range res {
		info := jobInfo(t, sys, r.ID)
		require.JSONEq(t, `{"i":`+strconv.Itoa(i)+`}`, string(info.Payload))
	}
}

func TestEnqueueRefusesBadParamsAndStoresNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	good := dlq.JobParams{Tenant: tenantA, Queue: "email"}
	for name, bad := range map[string]dlq.JobParams{
		"no tenant":         {Queue: "email"},
		"tenant not a uuid": {Tenant: "acme", Queue: "email"},
		"no queue":          {Tenant: tenantA},
		"long queue":        {Tenant: tenantA, Queue: string(make([]byte, 129))},
		"negative attempts": {Tenant: tenantA, Queue: "email", MaxAttempts: -1},
		"payload not json":  {Tenant: tenantA, Queue: "email", Payload: json.RawMessage(`{"a":`)},
		"payload with NUL":  {Tenant: tenantA, Queue: "email", Payload: json.RawMessage(`{"a":"\u0000"}`)},
		"unencodable":       {Tenant: tenantA, Queue: "email", Payload: func() {}},
		"long dedup key":    {Tenant: tenantA, Queue: "email", DedupKey: string(make([]byte, 256))},
	} {
		_, err := app.EnqueueMany(ctx, []dlq.JobParams{good, bad})
		require.ErrorIs(t, err, dlq.ErrInvalidJob, name)
		err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
			_, err := app.EnqueueManyTx(ctx, tx, []dlq.JobParams{good, bad})
			return err
		})
		require.ErrorIs(t, err, dlq.ErrInvalidJob, name)
	}
	_, err := app.EnqueueMany(ctx, []dlq.JobParams{good, {Tenant: tenantB, Queue: "email"}})
	require.ErrorIs(t, err, dlq.ErrMixedTenants)
	require.Zero(t, countJobs(t, db.System, "true"))
}

func TestNewClientRefusesBadConfig(t *testing.T) {
	t.Parallel()
	noop := dlq.HandlerFunc(func(context.Context, *dlq.Job) error { return nil })
	for name, cfg := range map[string]dlq.Config{
		"negative poll":     {PollInterval: -time.Second},
		"negative attempts": {MaxAttempts: -1},
		"no handler":        {Queues: map[string]dlq.QueueConfig{"email": {}}},
		"empty queue name":  {Queues: map[string]dlq.QueueConfig{"": {Handler: noop}}},
		"negative conc":     {Queues: map[string]dlq.QueueConfig{"email": {Handler: noop, Concurrency: -1}}},
		"jitter too big":    {Backoff: dlq.Exponential{Jitter: 1}},
		"base above max":    {Backoff: dlq.Exponential{Base: time.Hour, Max: time.Second}},
		"negative dead ret": {DeadRetention: -time.Hour},
	} {
		_, err := dlq.NewClient(nil, cfg)
		require.ErrorIs(t, err, dlq.ErrInvalidConfig, name)
	}
	c, err := dlq.NewClient(nil, dlq.Config{})
	require.NoError(t, err)
	require.ErrorIs(t, c.Start(context.Background()), dlq.ErrNoQueues)
}

func TestEnqueueTenantScopeEndsWithTheStatement(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 1 // every call below uses the same session
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	app := newClient(t, pool, dlq.Config{})
	ctx := context.Background()

	_, err = app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "q", DedupKey: "k"})
	require.NoError(t, err)
	var setting string
	require.NoError(t, pool.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	require.Empty(t, setting, "the tenant does not outlive the enqueue on a pooled connection")
	require.Zero(t, countJobs(t, pool, "true"), "so the app role sees nothing without a tenant")

	// A duplicate's id is looked up in a scoped statement too.
	_, err = app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "q", DedupKey: "k"})
	require.NoError(t, err)
	require.Equal(t, 1, countJobs(t, db.System, "true"))
}

func TestConcurrentEnqueuesWithOneDedupKeyMakeOneJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()
	const callers = 16
	ids := make(chan dlq.Inserted, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			res, err := app.Enqueue(ctx, dlq.JobParams{Tenant: tenantA, Queue: "webhooks", DedupKey: "evt_race"})
			require.NoError(t, err)
			ids <- res
		})
	}
	wg.Wait()
	close(ids)
	var fresh int
	var first int64
	for res := range ids {
		if !res.Duplicate {
			fresh++
		}
		if first == 0 {
			first = res.ID
		}
		require.Equal(t, first, res.ID, "every caller learns the one job's id")
	}
	require.Equal(t, 1, fresh)
	require.Equal(t, 1, countJobs(t, db.System, "true"))
}
