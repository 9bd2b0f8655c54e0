package dlq_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
)

type tenantJob struct {
	tenant string
	dlq.JobParams
}

// seedDead enqueues jobs and marks them dead with an error, as the
// worker would after their last attempt.
func seedDead(t *testing.T, db *pgtest.DB, app *dlq.Client, jobs ...tenantJob) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for _, j := range jobs {
		res, err := app.EnqueueForTenant(ctx, j.tenant, j.JobParams)
		require.NoError(t, err)
		_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET state = 'dead', attempt = max_attempts, finalized_at = now(),
			errors = jsonb_build_array(jsonb_build_object('attempt', 1, 'at', now(), 'error', 'failed: ' || kind)) WHERE id = $1`, res.ID)
		require.NoError(t, err)
		ids = append(ids, res.ID)
	}
	return ids
}

func TestRedriveDiscardAndPurge(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()
	ids := seedDead(t, db, app,
		tenantJob{tenantA, dlq.JobParams{Queue: "webhooks", Kind: "hubspot"}},
		tenantJob{tenantA, dlq.JobParams{Queue: "webhooks", Kind: "stripe"}},
		tenantJob{tenantB, dlq.JobParams{Queue: "webhooks", Kind: "stripe"}},
		tenantJob{tenantA, dlq.JobParams{Queue: "email", Kind: "welcome"}},
		tenantJob{tenantB, dlq.JobParams{Queue: "email", Kind: "welcome"}},
	)
	live, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "email"})
	require.NoError(t, err)

	require.NoError(t, sys.Redrive(ctx, ids[0]))
	info := jobInfo(t, sys, ids[0])
	require.Equal(t, dlq.StateAvailable, info.State)
	require.Zero(t, info.Attempt)
	require.Nil(t, info.FinalizedAt)
	require.Len(t, info.Errors, 1, "history kept")
	require.ErrorIs(t, sys.Redrive(ctx, ids[0]), dlq.ErrNotDead)
	require.ErrorIs(t, sys.Redrive(ctx, 999999), dlq.ErrJobNotFound)

	n, err := sys.RedriveWhere(ctx, dlq.Filter{Queue: "webhooks", Tenant: tenantB})
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	require.Equal(t, dlq.StateAvailable, jobInfo(t, sys, ids[2]).State)

	n, err = sys.RedriveWhere(ctx, dlq.Filter{ErrorContains: "stripe"})
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the other stripe job is no longer dead")

	require.NoError(t, sys.DiscardJob(ctx, ids[3]))
	require.Equal(t, dlq.StateDiscarded, jobInfo(t, sys, ids[3]).State)
	require.ErrorIs(t, sys.DiscardJob(ctx, live.ID), dlq.ErrNotDead)

	n, err = sys.Purge(ctx, dlq.Filter{})
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the last dead job")
	_, err = sys.GetJob(ctx, ids[4])
	require.ErrorIs(t, err, dlq.ErrJobNotFound)
	require.Equal(t, dlq.StateAvailable, jobInfo(t, sys, live.ID).State, "live jobs are never touched")

	_, err = sys.RedriveWhere(ctx, dlq.Filter{Tenant: "acme"})
	require.ErrorIs(t, err, dlq.ErrInvalidFilter)
	_, err = sys.Purge(ctx, dlq.Filter{Tenant: "acme"})
	require.ErrorIs(t, err, dlq.ErrInvalidFilter)
}

func TestStatsHandler(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{KnownQueues: []string{"crm", "email", "outbound", "webhooks"}})
	ctx := context.Background()
	first, err := app.Enqueue(withTenant(t, tenantA), dlq.JobParams{Queue: "email"})
	require.NoError(t, err)
	_, err = app.EnqueueMany(withTenant(t, tenantA), []dlq.JobParams{
		{Queue: "email"},
		{Queue: "email", RunAt: time.Now().Add(time.Hour)},
	})
	require.NoError(t, err)
	oldest, err := app.EnqueueForTenant(ctx, tenantB, dlq.JobParams{Queue: "email"})
	require.NoError(t, err)
	// Due for 90 seconds by the database's clock.
	_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET run_at = now() - interval '90 seconds' WHERE id = $1`, oldest.ID)
	require.NoError(t, err)
	dead := seedDead(t, db, app, tenantJob{tenantB, dlq.JobParams{Queue: "webhooks", Kind: "hubspot"}})
	_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET attempt = 1, run_at = now() + interval '1 minute' WHERE id = $1`, first.ID)
	require.NoError(t, err) // the first email job now waits for a retry

	srv := httptest.NewServer(sys.StatsHandler())
	t.Cleanup(srv.Close)
	var stats dlq.StatsResponse
	status, body := get(t, srv.URL, &stats)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, stats.Queues, 4)
	byName := map[string]dlq.QueueStats{}
	for _, q := range stats.Queues {
		byName[q.Queue] = q
	}
	require.Equal(t, dlq.QueueStats{Queue: "crm"}, byName["crm"])
	email := byName["email"]
	require.Equal(t, int64(2), email.Available)
	require.Equal(t, int64(1), email.Scheduled)
	require.Equal(t, int64(1), email.Retrying)
	// 90 seconds and the moments the test has taken since.
	require.GreaterOrEqual(t, email.OldestAvailableSeconds, 90.0)
	require.Less(t, email.OldestAvailableSeconds, 150.0)
	require.Equal(t, int64(1), byName["webhooks"].Dead)
	require.Contains(t, body, `"oldest_available_age_seconds":`)

	// With a tenant in the context, the stats are that tenant's.
	mine, err := app.Stats(withTenant(t, tenantA))
	require.NoError(t, err)
	for _, q := range mine {
		if q.Queue == "email" {
			require.Equal(t, dlq.QueueStats{Queue: "email", Available: 1, Scheduled: 1, Retrying: 1,
				OldestAvailableAge: q.OldestAvailableAge, OldestAvailableSeconds: q.OldestAvailableSeconds}, q)
			require.Less(t, q.OldestAvailableSeconds, 90.0, "tenant B's old job is not counted")
		}
	}

	// Re-drive through POST.
	status, body = post(t, srv.URL, "application/json", `{"action":"redrive","filter":{"queue":"webhooks"}}`)
	require.Equal(t, http.StatusOK, status, body)
	require.JSONEq(t, `{"action":"redrive","affected":1}`, body)
	require.Equal(t, dlq.StateAvailable, jobInfo(t, sys, dead[0]).State)

	for name, tc := range map[string]struct {
		contentType, body string
		status            int
	}{
		"not dead":         {"application/json", `{"job_id":` + strconv.FormatInt(dead[0], 10) + `}`, http.StatusConflict},
		"unknown job":      {"application/json", `{"job_id":999999}`, http.StatusNotFound},
		"bad json":         {"application/json", `{"job_id":`, http.StatusBadRequest},
		"unknown field":    {"application/json", `{"job":1}`, http.StatusBadRequest},
		"both":             {"application/json", `{"job_id":1,"filter":{}}`, http.StatusBadRequest},
		"neither":          {"application/json", `{}`, http.StatusBadRequest},
		"unknown action":   {"application/json", `{"action":"explode","job_id":1}`, http.StatusBadRequest},
		"purge one job":    {"application/json", `{"action":"purge","job_id":1}`, http.StatusBadRequest},
		"bad tenant":       {"application/json", `{"filter":{"tenant":"acme"}}`, http.StatusBadRequest},
		"trailing":         {"application/json", `{"job_id":1} {}`, http.StatusBadRequest},
		"not json":         {"text/plain", `{"job_id":1}`, http.StatusUnsupportedMediaType},
		"huge":             {"application/json", `{"filter":{"queue":"` + strings.Repeat("x", 70<<10) + `"}}`, http.StatusRequestEntityTooLarge},
		"negative job id":  {"application/json", `{"job_id":-4}`, http.StatusBadRequest},
		"bad time":         {"application/json", `{"filter":{"dead_before":"yesterday"}}`, http.StatusBadRequest},
		"discard filtered": {"application/json", `{"action":"discard","filter":{}}`, http.StatusBadRequest},
	} {
		status, body := post(t, srv.URL, tc.contentType, tc.body)
		require.Equal(t, tc.status, status, "%s: %s", name, body)
		require.Contains(t, body, `"status":`+strconv.Itoa(tc.status), name)
	}

	req, err := http.NewRequest(http.MethodDelete, srv.URL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, "GET, HEAD, POST", resp.Header.Get("Allow"))
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
}

func get(t *testing.T, url string, into any) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK {
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.NoError(t, json.Unmarshal(body, into))
	}
	return resp.StatusCode, string(body)
}

func post(t *testing.T, url, contentType, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, contentType, strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode >= 400 {
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, string(data)
}

// TestAdminCallsFollowTheTenantConventions: with a tenant in the context
// an administration call acts on that tenant's jobs only (and works on the
// app role, under row-level security); a …Tx acts on its transaction's
// tenant, refuses an unscoped transaction or a context naming another
// tenant, and leaves the transaction's scope as it was.
func TestAdminCallsFollowTheTenantConventions(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()
	ids := seedDead(t, db, app,
		tenantJob{tenantA, dlq.JobParams{Queue: "q", Kind: "a1"}},
		tenantJob{tenantA, dlq.JobParams{Queue: "q", Kind: "a2"}},
		tenantJob{tenantB, dlq.JobParams{Queue: "q", Kind: "b1"}},
		tenantJob{tenantB, dlq.JobParams{Queue: "q", Kind: "b2"}},
	)
	asA, asB := withTenant(t, tenantA), withTenant(t, tenantB)

	// The app role without a tenant sees nothing; with one, its own jobs.
	_, err := app.GetJob(ctx, ids[0])
	require.ErrorIs(t, err, dlq.ErrJobNotFound)
	require.Equal(t, tenantA, jobInfo(t, sys, ids[0]).Tenant, "through the system role")
	info, err := app.GetJob(asA, ids[0])
	require.NoError(t, err)
	require.Equal(t, "a1", info.Kind)
	_, err = app.GetJob(asB, ids[0])
	require.ErrorIs(t, err, dlq.ErrJobNotFound, "another tenant's job")
	require.ErrorIs(t, app.Redrive(asB, ids[0]), dlq.ErrJobNotFound)
	require.ErrorIs(t, sys.Redrive(asB, ids[0]), dlq.ErrJobNotFound, "a system-role client scoped by the context too")
	require.NoError(t, app.Redrive(asA, ids[0]))
	n, err := app.RedriveWhere(asB, dlq.Filter{Tenant: tenantA})
	require.NoError(t, err)
	require.Zero(t, n, "a filter does not widen the scope")
	n, err = sys.Purge(asB, dlq.Filter{})
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "tenant B's dead jobs only")
	require.Equal(t, dlq.StateDead, jobInfo(t, sys, ids[1]).State)

	type txCall func(ctx context.Context, tx pgx.Tx) error
	calls := map[string]txCall{
		"RedriveTx":    func(ctx context.Context, tx pgx.Tx) error { return sys.RedriveTx(ctx, tx, ids[1]) },
		"DiscardJobTx": func(ctx context.Context, tx pgx.Tx) error { return sys.DiscardJobTx(ctx, tx, ids[1]) },
		"RedriveWhereTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := sys.RedriveWhereTx(ctx, tx, dlq.Filter{})
			return err
		},
		"PurgeTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := sys.PurgeTx(ctx, tx, dlq.Filter{})
			return err
		},
	}
	for name, call := range calls {
		err := pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error { return call(ctx, tx) })
		require.ErrorIs(t, err, dlq.ErrNoTenant, name)
		err = rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error {
			err := call(asB, tx)
			var mismatch *dlq.TenantMismatchError
			require.ErrorAs(t, err, &mismatch, name)
			var setting string
			require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&setting))
			require.Equal(t, tenantA, setting, "%s left the scope alone", name)
			return nil
		})
		require.NoError(t, err)
	}
	require.Equal(t, dlq.StateDead, jobInfo(t, sys, ids[1]).State, "nothing happened")
	require.NoError(t, rls.InTx(ctx, db.App, tenantA, func(tx pgx.Tx) error { return calls["RedriveTx"](asA, tx) }))
	require.Equal(t, dlq.StateAvailable, jobInfo(t, sys, ids[1]).State)
}

// Running jobs are counted through the lease index (the tenant index
// holds waiting jobs only): across tenants by the system role, and per
// tenant in the routed form.
func TestStatsCountRunningJobs(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	app := newClient(t, db.App, dlq.Config{})
	sys := newClient(t, db.System, dlq.Config{})
	ctx := context.Background()
	lease := func(tenant string, queue string) {
		res, err := app.EnqueueForTenant(ctx, tenant, dlq.JobParams{Queue: queue})
		require.NoError(t, err)
		_, err = db.System.Exec(ctx, `UPDATE platform.dlq_jobs SET state = 'running', attempt = 1, claims = 1,
			attempted_at = now(), lease_until = now() + interval '1 hour' WHERE id = $1`, res.ID)
		require.NoError(t, err)
	}
	lease(tenantA, "email")
	lease(tenantA, "email")
	lease(tenantB, "email")
	lease(tenantB, "crm")
	_, err := app.EnqueueForTenant(ctx, tenantA, dlq.JobParams{Queue: "email"})
	require.NoError(t, err)
	seedDead(t, db, app, tenantJob{tenantB, dlq.JobParams{Queue: "crm"}})

	count := func(stats []dlq.QueueStats) map[string][2]int64 {
		m := map[string][2]int64{}
		for _, q := range stats {
			m[q.Queue] = [2]int64{q.Running, q.Available + q.Dead}
		}
		return m
	}
	all, err := sys.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string][2]int64{"email": {3, 1}, "crm": {1, 1}}, count(all))
	a, err := app.Stats(withTenant(t, tenantA))
	require.NoError(t, err)
	require.Equal(t, map[string][2]int64{"email": {2, 1}}, count(a))
	b, err := app.Stats(withTenant(t, tenantB))
	require.NoError(t, err)
	require.Equal(t, map[string][2]int64{"email": {1, 0}, "crm": {1, 1}}, count(b))
	// The system role with a tenant in the context sees that tenant's only.
	sb, err := sys.Stats(withTenant(t, tenantB))
	require.NoError(t, err)
	require.Equal(t, count(b), count(sb))
}
