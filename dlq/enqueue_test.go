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
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

func TestEnqueueStoresEveryField(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{MaxAttempts: 7})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := withTenant(t, tenantA)

	runAt := time.Date(2031, 1, 2, 3, 4, 5, 6000, time.UTC)
	res, err := app.Enqueue(ctx, dlq.JobParams{
		Queue: "email", Kind: "welcome", Payload: map[string]string{"to": "a@example.com"},
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
	var createdNow bool
	require.NoError(t, db.System.QueryRow(ctx, "SELECT created_at BETWEEN now() - interval '1 minute' AND now() FROM platform.dlq_jobs WHERE id = $1", res.ID).Scan(&createdNow))
	require.True(t, createdNow, "created at the database's now(): %v", info.CreatedAt)

	// Defaults: the database's now(), the client's max attempts, an empty
	// object.
	res, err = app.Enqueue(ctx, dlq.JobParams{Queue: "email"})
	require.NoError(t, err)
	info = jobInfo(t, sys, res.ID)
	require.Equal(t, 7, info.MaxAttempts)
	require.True(t, info.CreatedAt.Equal(info.RunAt), "due when created, by one clock")
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
		if _, err := app.EnqueueTx(ctx, tx, dlq.JobParams{Queue: "email"}); err != nil {
			return err
		}
		return rollback
	})
	require.ErrorIs(t, err, rollback)
	require.Zero(t, countJobs(t, db.System, "true"), "a rolled-back EnqueueTx leaves no job")

	var id int64
	err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		res, err := app.EnqueueTx(withTenant(t, tenantA), tx, dlq.JobParams{Queue: "email"})
		id = res.ID
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countJobs(t, db.System, "true"))
	require.Equal(t, tenantA, jobInfo(t, newClient(t, db.System, dlq.Config{}), id).Tenant, "the transaction's tenant")
}

// TestEnqueueFollowsTheTenantConventions: the request path takes the
// tenant from the context, a …Tx from its transaction — refusing a
// context that names another and never re-scoping the transaction — and
// system work names it explicitly.
func TestEnqueueFollowsTheTenantConventions(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()
	p := dlq.JobParams{Queue: "email"}

	// No tenant anywhere: the shared error, nothing stored.
	_, err := app.Enqueue(ctx, p)
	require.ErrorIs(t, err, errs.ErrNoTenant)
	require.ErrorIs(t, err, tenancy.ErrNoTenant)
	_, err = app.EnqueueMany(ctx, []dlq.JobParams{p})
	require.ErrorIs(t, err, dlq.ErrNoTenant)
	_, err = app.EnqueueForTenant(ctx, "acme", p)
	require.ErrorIs(t, err, dlq.ErrInvalidTenant)
	err = pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
		_, err := app.EnqueueTx(ctx, tx, p)
		return err
	})
	require.ErrorIs(t, err, dlq.ErrNoTenant, "an unscoped transaction")
	require.Zero(t, countJobs(t, db.System, "true"))

	// A context naming another tenant than the transaction's: refused,
	// and the caller's transaction still belongs to its own tenant.
	err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		_, err := app.EnqueueTx(withTenant(t, tenantB), tx, p)
		var mismatch *dlq.TenantMismatchError
		require.ErrorAs(t, err, &mismatch)
		require.Equal(t, tenantB, mismatch.Context)
		require.Equal(t, tenantA, mismatch.Transaction)
		require.ErrorIs(t, err, tenancy.ErrTenantMismatch)
		_, err = app.EnqueueManyTx(withTenant(t, tenantB), tx, []dlq.JobParams{p})
		require.ErrorIs(t, err, dlq.ErrTenantMismatch)
		var setting string
		require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&setting))
		require.Equal(t, tenantA, setting)
		// …and can go on writing its own tenant's jobs.
		_, err = app.EnqueueTx(withTenant(t, tenantA), tx, p)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countJobs(t, db.System, "tenant_id = $1", tenantA))

	// Each call stores the job for its own tenant.
	fromCtx, err := app.Enqueue(withTenant(t, tenantB), p)
	require.NoError(t, err)
	require.Equal(t, tenantB, jobInfo(t, sys, fromCtx.ID).Tenant)
	explicit, err := app.EnqueueForTenant(withTenant(t, tenantA), tenantB, p)
	require.NoError(t, err)
	require.Equal(t, tenantB, jobInfo(t, sys, explicit.ID).Tenant, "the explicit tenant")

	// The app role sees only the jobs of the tenant set, none without.
	require.Zero(t, countJobs(t, db.App, "true"), "no tenant set: no rows")
}

func TestDedupKeyMakesOneJob(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := context.Background()

	first, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "webhooks", DedupKey: "evt_1", Payload: json.RawMessage(`{"n":1}`)})
	require.NoError(t, err)
	second, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "webhooks", DedupKey: "evt_1", Payload: json.RawMessage(`{"n":2}`)})
	require.NoError(t, err)
	require.True(t, second.Duplicate)
	require.Equal(t, first.ID, second.ID)
	require.Equal(t, 1, countJobs(t, db.System, "true"))

	// The key is per tenant and per queue; within one batch a repeated
	// key is a duplicate of the batch's own job.
	res, err := app.EnqueueManyForTenant(ctx, tenantA, []dlq.JobParams{
		{Queue: "email", DedupKey: "evt_1"},
		{Queue: "webhooks", DedupKey: "evt_1"},
		{Queue: "email", DedupKey: "evt_2"},
		{Queue: "email", DedupKey: "evt_2"},
		{Queue: "email"},
	})
	require.NoError(t, err)
	require.Len(t, res, 5)
	require.False(t, res[0].Duplicate)
	require.Equal(t, dlq.Inserted{ID: first.ID, Duplicate: true}, res[1])
	require.False(t, res[2].Duplicate)
	require.Equal(t, dlq.Inserted{ID: res[2].ID, Duplicate: true}, res[3])
	require.False(t, res[4].Duplicate)
	_, err = app.EnqueueForTenant(ctx, tenantB, dlq.JobParams{Queue: "webhooks", DedupKey: "evt_1"})
	require.NoError(t, err)
	require.Equal(t, 5, countJobs(t, db.System, "true"))

	var payload string
	require.NoError(t, db.System.QueryRow(ctx, "SELECT payload::text FROM platform.dlq_jobs WHERE id = $1", first.ID).Scan(&payload))
	require.JSONEq(t, `{"n":1}`, payload, "the duplicate changed nothing")

	// Jobs without a key are never duplicates of each other, one at a
	// time as in a batch.
	var keyless []int64
	for range 2 {
		in, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "webhooks"})
		require.NoError(t, err)
		require.False(t, in.Duplicate)
		keyless = append(keyless, in.ID)
	}
	require.NotEqual(t, keyless[0], keyless[1])
	require.Equal(t, 2, countJobs(t, db.System, "id = ANY($1) AND dedup_key IS NULL", keyless))
}

func TestEnqueueManyReturnsIDsInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	params := make([]dlq.JobParams, 50)
	for i := range params {
		params[i] = dlq.JobParams{Queue: "bulk", Payload: map[string]int{"i": i}}
	}
	res, err := app.EnqueueMany(withTenant(t, tenantA), params)
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
	good := dlq.JobParams{Queue: "email"}
	for name, bad := range map[string]dlq.JobParams{
		"no queue":          {},
		"NUL in queue":      {Queue: "e\x00mail"},
		"bad UTF-8 in kind": {Queue: "email", Kind: "\xff"},
		"long queue":        {Queue: string(make([]byte, 129))},
		"negative attempts": {Queue: "email", MaxAttempts: -1},
		"payload not json":  {Queue: "email", Payload: json.RawMessage(`{"a":`)},
		"payload with NUL":  {Queue: "email", Payload: json.RawMessage(`{"a":"\u0000"}`)},
		"unencodable":       {Queue: "email", Payload: func() {}},
		"long dedup key":    {Queue: "email", DedupKey: string(make([]byte, 256))},
	} {
		_, err := app.EnqueueManyForTenant(ctx, tenantA, []dlq.JobParams{good, bad})
		require.ErrorIs(t, err, dlq.ErrInvalidJob, name)
		require.NotErrorIs(t, err, pgtext.ErrUnstorable, "no internal error escapes")
		err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
			_, err := app.EnqueueManyTx(ctx, tx, []dlq.JobParams{good, bad})
			return err
		})
		require.ErrorIs(t, err, dlq.ErrInvalidJob, name)
	}
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
	// A worker LISTENs on a connection opened from a pool's configuration.
	_, err = dlq.NewClient(connOnly{}, dlq.Config{Queues: map[string]dlq.QueueConfig{"email": {Handler: noop}}})
	require.ErrorIs(t, err, dlq.ErrInvalidConfig)
	_, err = dlq.NewClient(connOnly{}, dlq.Config{DisableListen: true, Queues: map[string]dlq.QueueConfig{"email": {Handler: noop}}})
	require.NoError(t, err)
}

// connOnly is a DB without a pool's configuration, as a *pgx.Conn is.
type connOnly struct{ dlq.DB }

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

	_, err = app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q", DedupKey: "k"})
	require.NoError(t, err)
	var setting string
	require.NoError(t, pool.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	require.Empty(t, setting, "the tenant does not outlive the enqueue on a pooled connection")
	require.Zero(t, countJobs(t, pool, "true"), "so the app role sees nothing without a tenant")

	// A duplicate's id is looked up in a scoped statement too.
	_, err = app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "q", DedupKey: "k"})
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
			res, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "webhooks", DedupKey: "evt_race"})
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

// TestEnqueueTxOfADuplicateReturnsTheHoldersID covers the single-job
// transactional path, whose scope check and insert share one statement: a
// second job with the same dedup key, in the same transaction or a later
// one, is reported as a duplicate carrying the first job's id.
func TestEnqueueTxOfADuplicateReturnsTheHoldersID(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	ctx := withTenant(t, tenantA)
	p := dlq.JobParams{Queue: "email", DedupKey: "welcome:1"}

	var first, again dlq.Inserted
	err := rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
		var err error
		if first, err = app.EnqueueTx(ctx, tx, p); err != nil {
			return err
		}
		again, err = app.EnqueueTx(ctx, tx, p)
		return err
	})
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	require.True(t, again.Duplicate, "the same key in the same transaction")
	require.Equal(t, first.ID, again.ID)

	err = rls.InTx(context.Background(), db.App, tenantA, func(tx pgx.Tx) error {
		later, err := app.EnqueueTx(context.Background(), tx, p)
		require.True(t, later.Duplicate, "the same key in a later transaction, the context naming no tenant")
		require.Equal(t, first.ID, later.ID)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, countJobs(t, db.System, "tenant_id = $1", tenantA))
}
