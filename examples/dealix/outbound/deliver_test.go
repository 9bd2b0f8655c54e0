package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/outbound"
	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(dlq.Migrate, approvals.Migrate, migrateOutbound))
}

// migrateOutbound migrates the domain and grants its schema to the test
// roles, as the server's bootstrap does.
func migrateOutbound(ctx context.Context, pool *pgxpool.Pool) error {
	if err := outbound.Migrate(ctx, pool); err != nil {
		return err
	}
	return migrate.Grant(ctx, pool, outbound.Schema, pgtest.AppRole, pgtest.SystemRole)
}

var errWorkerDied = errors.New("worker died")

// dyingSender stands for a worker that dies in the middle of a batch: on
// a job's first attempt, the send after the first `after` ones fails.
// With delivered set, that message reaches the provider before the
// failure (the worker died between the provider's answer and the ledger's
// update); otherwise it never leaves.
type dyingSender struct {
	inner     outbound.Sender
	after     int
	delivered bool

	mu    sync.Mutex
	first int            // sends on first attempts
	calls map[string]int // every call, per recipient
}

func (s *dyingSender) Send(ctx context.Context, m outbound.Message) (string, error) {
	job, ok := dlq.JobFrom(ctx)
	if !ok {
		return "", errors.New("Send called outside a job")
	}
	s.mu.Lock()
	s.calls[m.Recipient]++
	dies := false
	if job.Attempt == 1 {
		dies = s.first == s.after
		s.first++
	}
	s.mu.Unlock()
	if dies {
		if s.delivered {
			if _, err := s.inner.Send(ctx, m); err != nil {
				return "", err
			}
		}
		return "", errWorkerDied
	}
	return s.inner.Send(ctx, m)
}

func TestWorkerDyingMidBatchSendsEachRecipientOnce(t *testing.T) {
	t.Parallel()
	for _, delivered := range []bool{false, true} {
		t.Run(fmt.Sprintf("message delivered before the death: %v", delivered), func(t *testing.T) {
			t.Parallel()
			testDyingWorker(t, delivered)
		})
	}
}

func testDyingWorker(t *testing.T, delivered bool) {
	ctx := context.Background()
	db := pgtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, err := dlq.NewClient(db.App, dlq.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := approvals.New(db.App, approvals.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	const total, after = 30, 12
	sender := &dyingSender{inner: &outbound.FakeSender{DB: db.App}, after: after, delivered: delivered, calls: map[string]int{}}
	svc := &outbound.Service{DB: db.App, Jobs: jobs, Queue: "outbound", Approvals: gate, Sender: sender, Log: log}
	worker, err := dlq.NewClient(db.System, dlq.Config{
		Queues:       map[string]dlq.QueueConfig{"outbound": {Handler: svc.Handler()}},
		Backoff:      dlq.BackoffFunc(func(int) time.Duration { return 10 * time.Millisecond }),
		PollInterval: 20 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })

	// The campaign, through the real handler, as an authenticated user.
	tenant := uuid.NewString()
	rcpts := make([]string, total)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%02d@example.com", i)
	}
	body := `{"name":"n","message":{"subject":"s","body":"b"},"recipients":["` + strings.Join(rcpts, `","`) + `"],"risk":0.1}`
	req := httptest.NewRequest("POST", "/api/v1/outbound/campaigns", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	pctx, err := tenancy.WithPrincipal(req.Context(), tenancy.Principal{Subject: "sara", TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	svc.Create(rec, req.WithContext(pctx))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	loc := rec.Header().Get("Location")
	campaignID := loc[strings.LastIndex(loc, "/")+1:]

	// Wait for the campaign to be sent and its job finished (the job's
	// outcome is recorded after the handler returns); the bound only
	// keeps a broken build from hanging.
	deadline := time.Now().Add(time.Minute)
	var status, state string
	var attempt int
	for {
		if err := db.System.QueryRow(ctx, `SELECT c.status, j.state, j.attempt FROM dealix.outbound_campaigns c, platform.dlq_jobs j
			WHERE c.id = $1 AND j.tenant_id = c.tenant_id AND j.queue = 'outbound'`, campaignID).Scan(&status, &state, &attempt); err != nil {
			t.Fatal(err)
		}
		if state != string(dlq.StateAvailable) && state != string(dlq.StateRunning) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign %s, job %s after a minute", status, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The job died once and succeeded on its retry.
	if status != outbound.StatusSent || attempt != 2 || state != string(dlq.StateCompleted) {
		t.Fatalf("campaign %s, job at attempt %d, %s; want sent, 2, completed", status, attempt, state)
	}

	// Each recipient got exactly one message. The retry skipped the
	// recipients sent before the death and handed the interrupted one to
	// the sender again under the same key.
	dying := rcpts[after]
	rows, err := db.System.Query(ctx, `SELECT recipient, calls FROM dealix.outbound_fake_mailbox WHERE tenant_id = $1`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	mailbox := map[string]int{}
	providerCalls := map[string]int{}
	for rows.Next() {
		var r string
		var n int
		if err := rows.Scan(&r, &n); err != nil {
			t.Fatal(err)
		}
		mailbox[r]++
		providerCalls[r] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sender.mu.Lock()
	defer sender.mu.Unlock()
	for _, r := range rcpts {
		wantCalls, wantProvider := 1, 1
		if r == dying {
			wantCalls = 2
			if delivered {
				wantProvider = 2 // the same message handed over twice, received once
			}
		}
		if mailbox[r] != 1 || sender.calls[r] != wantCalls || providerCalls[r] != wantProvider {
			t.Fatalf("%s: %d messages, %d sends, %d provider calls; want 1, %d, %d",
				r, mailbox[r], sender.calls[r], providerCalls[r], wantCalls, wantProvider)
		}
	}
	var sent, retried int
	if err := db.System.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE attempts > 1)
		FROM dealix.outbound_messages WHERE tenant_id = $1 AND campaign_id = $2`, tenant, campaignID).Scan(&sent, &retried); err != nil {
		t.Fatal(err)
	}
	if sent != total || retried != 1 {
		t.Fatalf("ledger: %d sent, %d retried; want %d, 1", sent, retried, total)
	}
}

// slowSender takes its time over each message, as a remote provider does.
type slowSender struct {
	inner outbound.Sender
	delay time.Duration
}

func (s slowSender) Send(ctx context.Context, m outbound.Message) (string, error) {
	time.Sleep(s.delay)
	return s.inner.Send(ctx, m)
}

func TestLargeCampaignYieldsBeforeTheAttemptsDeadline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	jobs, _ := dlq.NewClient(db.App, dlq.Config{Logger: log})
	gate, _ := approvals.New(db.App, approvals.Config{Logger: log})
	// Each attempt has 600ms and yields 400ms before its end: about four
	// 50ms messages per attempt, so 40 recipients need several claims.
	svc := &outbound.Service{DB: db.App, Jobs: jobs, Queue: "outbound", Approvals: gate, Log: log,
		Sender: slowSender{inner: &outbound.FakeSender{DB: db.App}, delay: 50 * time.Millisecond}, YieldBefore: 400 * time.Millisecond}
	worker, err := dlq.NewClient(db.System, dlq.Config{
		Queues: map[string]dlq.QueueConfig{"outbound": {Handler: svc.Handler(), Timeout: 600 * time.Millisecond}},
		// Only a counted failure would make the job dead: one attempt.
		MaxAttempts: 1, PollInterval: 20 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = worker.Stop(context.Background()) })

	tenant := uuid.NewString()
	rcpts := make([]string, 40)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("r%02d@example.com", i)
	}
	body := `{"name":"n","message":{"subject":"s","body":"b"},"recipients":["` + strings.Join(rcpts, `","`) + `"]}`
	req := httptest.NewRequest("POST", "/api/v1/outbound/campaigns", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	pctx, _ := tenancy.WithPrincipal(req.Context(), tenancy.Principal{Subject: "sara", TenantID: tenant})
	rec := httptest.NewRecorder()
	svc.Create(rec, req.WithContext(pctx))
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}

	deadline := time.Now().Add(time.Minute)
	var state string
	var attempt, claims, mailbox int
	for {
		if err := db.System.QueryRow(ctx, `SELECT state, attempt, claims,
			(SELECT count(*) FROM dealix.outbound_fake_mailbox WHERE tenant_id = $1)
			FROM platform.dlq_jobs WHERE tenant_id = $1`, tenant).Scan(&state, &attempt, &claims, &mailbox); err != nil {
			t.Fatal(err)
		}
		if state != string(dlq.StateAvailable) && state != string(dlq.StateRunning) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s after a minute", state)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state != string(dlq.StateCompleted) || mailbox != len(rcpts) || claims < 3 {
		t.Fatalf("job %s after %d claims (attempt %d), %d messages; want completed, several claims, %d messages",
			state, claims, attempt, mailbox, len(rcpts))
	}
}
