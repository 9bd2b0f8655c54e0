package webhooksig_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/webhooksig"
)

// replayBundle is a database and a store on the serving role.
type replayBundle struct {
	db    *pgtest.DB
	store *webhooksig.ReplayStore
}

func setupReplay(t *testing.T, cfg ...webhooksig.ReplayStoreConfig) *replayBundle {
	t.Helper()
	db := pgtest.New(t)
	var c webhooksig.ReplayStoreConfig
	if len(cfg) > 0 {
		c = cfg[0]
	}
	store, err := webhooksig.NewReplayStore(db.App, c)
	require.NoError(t, err)
	return &replayBundle{db: db, store: store}
}

func (b *replayBundle) rows(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Admin.QueryRow(context.Background(), "SELECT count(*) FROM platform.webhooksig_deliveries").Scan(&n))
	return n
}

// state returns the stored state of the only delivery of verifier, or ""
// when there is none.
func (b *replayBundle) state(t *testing.T, verifier string) string {
	t.Helper()
	var state string
	err := b.db.Admin.QueryRow(context.Background(),
		"SELECT state FROM platform.webhooksig_deliveries WHERE verifier = $1", verifier).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	require.NoError(t, err)
	return state
}

// exec runs sql as the superuser, to put rows in the states a test needs
// (a lease or an expiry in the past) on the database's own clock.
func (b *replayBundle) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	tag, err := b.db.Admin.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
	require.NotZero(t, tag.RowsAffected(), sql)
}

// standardRequest signs body as a Standard Webhooks delivery with id.
func standardRequest(t *testing.T, secret, id string, body []byte) http.Header {
	t.Helper()
	at := time.Now()
	sig, err := webhooksig.SignStandard(id, at, body, secret)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", formatUnix(at))
	h.Set("webhook-signature", sig)
	return h
}

const standardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func newStandard(t *testing.T) webhooksig.Verifier {
	t.Helper()
	v, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{standardSecret}})
	require.NoError(t, err)
	return v
}

func TestReplayRejected(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	body := []byte(`{"type":"invoice.paid"}`)
	h := standardRequest(t, standardSecret, "msg_replayed", body)

	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "completed", b.state(t, "standard-webhooks"))
	resp, doc := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, doc["detail"], "already received")
	require.Empty(t, resp.Header.Get("Retry-After"), "a completed delivery is final: no retry is invited")
	require.EqualValues(t, 1, calls.Load())

	// Another id from the same sender is processed.
	resp, _ = post(t, srv.URL, body, standardRequest(t, standardSecret, "msg_other", body))
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.EqualValues(t, 2, calls.Load())
}

func TestReplayAcknowledged(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store, OnReplay: webhooksig.AcknowledgeReplay},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	body := []byte(`{"type":"invoice.paid"}`)
	h := standardRequest(t, standardSecret, "msg_ack", body)
	for range 3 {
		resp, _ := post(t, srv.URL, body, h)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	require.EqualValues(t, 1, calls.Load(), "acknowledged replays do not reach the handler")
}

// A duplicate that arrives while the first delivery is still being
// processed gets 409 with Retry-After, whatever OnReplay says: the first
// may yet fail, so the duplicate must not be acknowledged. Once the first
// completed, the duplicate is a replay.
func TestReplayConcurrentDuplicateInProgress(t *testing.T) {
	t.Parallel()
	for _, action := range []webhooksig.ReplayAction{webhooksig.RejectReplay, webhooksig.AcknowledgeReplay} {
		b := setupReplay(t)
		var calls atomic.Int32
		entered, release := make(chan struct{}), make(chan struct{})
		srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store, OnReplay: action},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				close(entered)
				<-release
				w.WriteHeader(http.StatusAccepted)
			}))
		body := []byte(`{"type":"order.created"}`)
		h := standardRequest(t, standardSecret, "msg_double", body)

		first := make(chan int, 1)
		go func() { first <- postStatus(srv.URL, body, h) }()
		<-entered

		resp, doc := post(t, srv.URL, body, h)
		require.Equal(t, http.StatusConflict, resp.StatusCode, "action %d", action)
		require.Contains(t, doc["detail"], "being processed")
		retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		require.NoError(t, err, "Retry-After %q", resp.Header.Get("Retry-After"))
		require.True(t, retry >= 1 && retry <= int(webhooksig.DefaultLease/time.Second), "Retry-After %d", retry)
		require.Equal(t, "in_progress", b.state(t, "standard-webhooks"))

		close(release)
		require.Equal(t, http.StatusAccepted, <-first)
		require.Equal(t, "completed", b.state(t, "standard-webhooks"))

		want := http.StatusConflict
		if action == webhooksig.AcknowledgeReplay {
			want = http.StatusOK
		}
		resp, _ = post(t, srv.URL, body, h)
		require.Equal(t, want, resp.StatusCode)
		require.EqualValues(t, 1, calls.Load())
	}
}

// Only a 2xx answer completes a delivery: after a 4xx (a transient reason
// is common: a record not replicated yet), a 5xx or a panic the sender's
// retry reaches the handler again.
func TestReplayRetryReachesHandlerAfterFailure(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "customer not found yet", http.StatusNotFound)
		case 2:
			http.Error(w, "validation pending", http.StatusUnprocessableEntity)
		case 3:
			http.Error(w, "database down", http.StatusInternalServerError)
		case 4:
			panic(http.ErrAbortHandler) // a crashed handler also frees the id
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	body := []byte(`{}`)
	h := standardRequest(t, standardSecret, "msg_retry", body)
	for _, want := range []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusInternalServerError} {
		resp, _ := post(t, srv.URL, body, h)
		require.Equal(t, want, resp.StatusCode)
		require.Zero(t, b.rows(t), "a failed delivery is released")
	}

	require.Equal(t, -1, postStatus(srv.URL, body, h), "the aborted handler closes the connection")
	require.Eventually(t, func() bool { return b.rows(t) == 0 }, 10*time.Second, 10*time.Millisecond)

	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.EqualValues(t, 5, calls.Load())
}

// A sender that hangs up cancels the request's context; a handler that gives
// up on it has not processed the event, so the retry reaches it again.
func TestReplayRetryAfterCancelledContext(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	entered := make(chan struct{}, 1)
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-r.Context().Done() // the sender hung up; the work is abandoned, nothing written
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	body := []byte(`{"type":"contact.created"}`)
	h := standardRequest(t, standardSecret, "msg_cancelled", body)

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header = h.Clone()
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	cancel()
	require.Error(t, <-done)
	require.Eventually(t, func() bool { return b.rows(t) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the abandoned delivery is released")

	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.EqualValues(t, 2, calls.Load())
}

// A process killed mid-handler leaves its claim in progress. Its retries get
// 409 with Retry-After while the lease runs; once the lease has run out (put
// in the past on the database's clock here), the retry reaches the handler.
func TestReplayDeadHolderLeaseExpires(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
	}))
	body := []byte(`{"type":"deal.closed"}`)
	h := standardRequest(t, standardSecret, "msg_dead", body)

	// The dead holder: it claimed and never completed, released or renewed.
	dead, err := b.store.Claim(ctx, "standard-webhooks", "msg_dead", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, dead.Status)

	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Zero(t, calls.Load())

	b.exec(t, `UPDATE platform.webhooksig_deliveries SET lease_until = now() - interval '1 second' WHERE delivery_id = 'msg_dead'`)
	resp, _ = post(t, srv.URL, body, h)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 1, calls.Load())
	require.Equal(t, "completed", b.state(t, "standard-webhooks"))

	// The dead holder's token no longer holds the delivery.
	require.ErrorIs(t, b.store.Complete(ctx, "standard-webhooks", "msg_dead", dead.Token), webhooksig.ErrClaimLost)
	require.ErrorIs(t, b.store.Release(ctx, "standard-webhooks", "msg_dead", dead.Token), webhooksig.ErrClaimLost)
	require.Equal(t, "completed", b.state(t, "standard-webhooks"))
}

// The middleware renews the lease while a slow handler runs, so a duplicate
// arriving after the first lease would have run out still finds the
// delivery in progress.
func TestReplayLeaseRenewedWhileHandlerRuns(t *testing.T) {
	t.Parallel()
	b := setupReplay(t, webhooksig.ReplayStoreConfig{Lease: time.Second})
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	body := []byte(`{"type":"report.ready"}`)
	h := standardRequest(t, standardSecret, "msg_slow", body)
	first := make(chan int, 1)
	go func() { first <- postStatus(srv.URL, body, h) }()
	<-entered

	var claimedUntil time.Time
	require.NoError(t, b.db.Admin.QueryRow(ctx, "SELECT lease_until FROM platform.webhooksig_deliveries").Scan(&claimedUntil))
	// Wait, on the database's clock, until the first lease has run out: the
	// renewed lease must still hold the delivery.
	require.Eventually(t, func() bool {
		var past bool
		err := b.db.Admin.QueryRow(ctx, "SELECT now() > $1::timestamptz", claimedUntil).Scan(&past)
		return err == nil && past
	}, 30*time.Second, 50*time.Millisecond)
	var leaseUntil time.Time
	require.NoError(t, b.db.Admin.QueryRow(ctx, "SELECT lease_until FROM platform.webhooksig_deliveries").Scan(&leaseUntil))
	require.True(t, leaseUntil.After(claimedUntil), "renewed: %v after %v", leaseUntil, claimedUntil)

	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode, "still in progress")
	require.NotEmpty(t, resp.Header.Get("Retry-After"))

	close(release)
	require.Equal(t, http.StatusOK, <-first)
	require.Equal(t, "completed", b.state(t, "standard-webhooks"))
}

// GitHub does not sign X-GitHub-Delivery: a captured delivery resent under
// another delivery id, or none, is the same delivery.
func TestReplayGitHubResentUnderAnotherID(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newGitHub(t, "s3cret"), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
	}))
	body := []byte(`{"action":"opened","number":7}`)
	sig := webhooksig.SignGitHub("s3cret", body)

	resp, _ := post(t, srv.URL, body, http.Header{"X-Hub-Signature-256": {sig}, "X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for name, h := range map[string]http.Header{
		"changed id": {"X-Hub-Signature-256": {sig}, "X-Github-Delivery": {"00000000-0000-4000-8000-000000000000"}},
		"no id":      {"X-Hub-Signature-256": {sig}},
		"empty id":   {"X-Hub-Signature-256": {sig}, "X-Github-Delivery": {""}},
	} {
		resp, doc := post(t, srv.URL, body, h)
		require.Equal(t, http.StatusConflict, resp.StatusCode, name)
		require.Contains(t, doc["detail"], "already received", name)
	}
	require.EqualValues(t, 1, calls.Load())

	// Another event is another delivery.
	other := []byte(`{"action":"closed","number":7}`)
	resp, _ = post(t, srv.URL, other, http.Header{"X-Hub-Signature-256": {webhooksig.SignGitHub("s3cret", other)}})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.EqualValues(t, 2, calls.Load())
}

func TestReplayStoreUnavailable(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	b.db.App.Close()
	body := []byte(`{}`)
	resp, doc := post(t, srv.URL, body, standardRequest(t, standardSecret, "msg_down", body))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "30", resp.Header.Get("Retry-After"))
	require.EqualValues(t, 503, doc["status"])
	require.Zero(t, calls.Load())
}

func TestReplayStoreClaimRace(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	var acquired, inProgress atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			c, err := b.store.Claim(ctx, "stripe", "evt_race", time.Hour)
			errs <- err
			switch c.Status {
			case webhooksig.ClaimAcquired:
				acquired.Add(1)
			case webhooksig.ClaimInProgress:
				inProgress.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, acquired.Load())
	require.EqualValues(t, 15, inProgress.Load())
	require.Equal(t, 1, b.rows(t))
}

// The store's lifecycle: claim, renew, complete, replay, expiry, release,
// all on the database's clock.
func TestReplayStoreLifecycle(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()

	c, err := b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)
	require.NotEmpty(t, c.Token)
	var leaseOK bool
	require.NoError(t, b.db.Admin.QueryRow(ctx, `SELECT lease_until = received_at + interval '30 seconds'
		AND expires_at = received_at + interval '1 hour' AND lease_until = $1
		FROM platform.webhooksig_deliveries WHERE verifier = 'github'`, c.LeaseUntil).Scan(&leaseOK))
	require.True(t, leaseOK, "lease and expiry are computed from one database now()")

	other, err := b.store.Claim(ctx, "slack", "d-1", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, other.Status, "ids are scoped by verifier")

	busy, err := b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimInProgress, busy.Status)
	require.Empty(t, busy.Token)
	require.True(t, busy.RetryAfter >= time.Second && busy.RetryAfter <= webhooksig.DefaultLease, "%v", busy.RetryAfter)
	require.True(t, busy.LeaseUntil.Equal(c.LeaseUntil))

	until, err := b.store.Renew(ctx, "github", "d-1", c.Token)
	require.NoError(t, err)
	require.False(t, until.Before(c.LeaseUntil))
	_, err = b.store.Renew(ctx, "github", "d-1", "00000000-0000-4000-8000-000000000000")
	require.ErrorIs(t, err, webhooksig.ErrClaimLost, "another token")

	require.NoError(t, b.store.Complete(ctx, "github", "d-1", c.Token))
	require.ErrorIs(t, b.store.Complete(ctx, "github", "d-1", c.Token), webhooksig.ErrClaimLost, "completed once")
	_, err = b.store.Renew(ctx, "github", "d-1", c.Token)
	require.ErrorIs(t, err, webhooksig.ErrClaimLost)
	replay, err := b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimCompleted, replay.Status)
	require.Zero(t, replay.RetryAfter)

	// Past its TTL a completed delivery is claimed afresh.
	b.exec(t, `UPDATE platform.webhooksig_deliveries SET expires_at = now() - interval '1 second' WHERE verifier = 'github'`)
	again, err := b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, again.Status)
	require.NotEqual(t, c.Token, again.Token)

	require.NoError(t, b.store.Release(ctx, "github", "d-1", again.Token))
	require.ErrorIs(t, b.store.Release(ctx, "github", "d-1", again.Token), webhooksig.ErrClaimLost)
	require.Equal(t, "", b.state(t, "github"))
	require.Equal(t, 1, b.rows(t), "the slack claim is untouched")
}

func TestReplayStoreInput(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	token := "00000000-0000-4000-8000-000000000000"
	for _, args := range [][2]string{{"", "id"}, {"github", ""}} {
		_, err := b.store.Claim(ctx, args[0], args[1], time.Hour)
		require.ErrorIs(t, err, webhooksig.ErrInvalidDelivery)
		require.ErrorIs(t, b.store.Release(ctx, args[0], args[1], token), webhooksig.ErrInvalidDelivery)
		require.ErrorIs(t, b.store.Complete(ctx, args[0], args[1], token), webhooksig.ErrInvalidDelivery)
		_, err = b.store.Renew(ctx, args[0], args[1], token)
		require.ErrorIs(t, err, webhooksig.ErrInvalidDelivery)
	}
	_, err := b.store.Claim(ctx, "github", "id", 0)
	require.ErrorIs(t, err, webhooksig.ErrInvalidDelivery)
	require.ErrorIs(t, b.store.Complete(ctx, "github", "id", "not-a-token"), webhooksig.ErrInvalidDelivery)

	long := strings.Repeat("x", 10_000) // beyond a btree entry: stored as its digest
	c, err := b.store.Claim(ctx, "github", long, time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)
	require.NoError(t, b.store.Complete(ctx, "github", long, c.Token))
	c, err = b.store.Claim(ctx, "github", long, time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimCompleted, c.Status)
	c, err = b.store.Claim(ctx, "github", long+"y", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)
	c, err = b.store.Claim(ctx, "github", "nul\x00and\xffinvalid", time.Hour)
	require.NoError(t, err, "an id PostgreSQL's text refuses is stored as its digest")
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)

	_, err = webhooksig.NewReplayStore(nil, webhooksig.ReplayStoreConfig{})
	require.ErrorIs(t, err, webhooksig.ErrInvalidConfig)
	for _, lease := range []time.Duration{-time.Second, time.Millisecond} {
		_, err = webhooksig.NewReplayStore(b.db.App, webhooksig.ReplayStoreConfig{Lease: lease})
		require.ErrorIs(t, err, webhooksig.ErrInvalidConfig, "lease %v", lease)
	}
}

func TestReplayStoreClaimTx(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()

	tx, err := b.db.App.Begin(ctx)
	require.NoError(t, err)
	c, err := b.store.ClaimTx(ctx, tx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)
	require.Empty(t, c.Token, "the transaction is the lease")
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, b.rows(t), "the claim rolled back with the caller's transaction")

	tx, err = b.db.App.Begin(ctx)
	require.NoError(t, err)
	c, err = b.store.ClaimTx(ctx, tx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimAcquired, c.Status)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, "completed", b.state(t, "stripe"), "committed with the handler's writes: processed")
	c, err = b.store.Claim(ctx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.Equal(t, webhooksig.ClaimCompleted, c.Status)

	// A delivery held in progress by Claim is reported as such in a
	// transaction too, and taken over once its lease ran out.
	held, err := b.store.Claim(ctx, "github", "d-held", time.Hour)
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		c, err := b.store.ClaimTx(ctx, tx, "github", "d-held", time.Hour)
		require.NoError(t, err)
		require.Equal(t, webhooksig.ClaimInProgress, c.Status)
		require.True(t, c.LeaseUntil.Equal(held.LeaseUntil))
		return nil
	}))
	b.exec(t, `UPDATE platform.webhooksig_deliveries SET lease_until = now() - interval '1 second' WHERE verifier = 'github'`)
	require.NoError(t, pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		c, err := b.store.ClaimTx(ctx, tx, "github", "d-held", time.Hour)
		require.NoError(t, err)
		require.Equal(t, webhooksig.ClaimAcquired, c.Status)
		return nil
	}))
	require.Equal(t, "completed", b.state(t, "github"))
}

// ClaimTx never changes the scope of the caller's transaction: a tenant
// set before is still set after, and an unscoped transaction stays so. A
// context naming another tenant than the transaction's is refused.
func TestReplayStoreClaimTxKeepsScope(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	const tenant = "6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"
	scope := func(tx pgx.Tx) string {
		var s string
		require.NoError(t, tx.QueryRow(ctx, "SELECT coalesce(current_setting($1, true), '')", rls.Setting).Scan(&s))
		return s
	}
	same, err := rls.WithTenant(ctx, tenant)
	require.NoError(t, err)
	other, err := rls.WithTenant(ctx, "11111111-2222-4333-8444-555555555555")
	require.NoError(t, err)
	require.NoError(t, pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		require.NoError(t, rls.SetTenant(ctx, tx, tenant))
		for i, c := range []context.Context{ctx, same} {
			got, err := b.store.ClaimTx(c, tx, "slack", "sig:"+strconv.Itoa(i), time.Hour)
			require.NoError(t, err)
			require.Equal(t, webhooksig.ClaimAcquired, got.Status)
			require.Equal(t, tenant, scope(tx))
		}

		_, err := b.store.ClaimTx(other, tx, "slack", "sig:other", time.Hour)
		var mismatch *errs.TenantMismatchError
		require.ErrorAs(t, err, &mismatch)
		require.ErrorIs(t, err, webhooksig.ErrTenantMismatch)
		require.Equal(t, tenant, mismatch.Transaction)
		require.Equal(t, tenant, scope(tx), "refused without touching the scope")
		return nil
	}))
	require.Equal(t, 2, b.rows(t), "the refused claim wrote nothing")

	// An unscoped transaction will do, with or without a tenant in the
	// context, and stays unscoped.
	require.NoError(t, pgx.BeginFunc(ctx, b.db.App, func(tx pgx.Tx) error {
		for i, c := range []context.Context{ctx, other} {
			_, err := b.store.ClaimTx(c, tx, "slack", "sig:unscoped-"+strconv.Itoa(i), time.Hour)
			require.NoError(t, err)
			require.Equal(t, "", scope(tx))
		}
		return nil
	}))
}

// A claim inside an open transaction holds back a concurrent claim of the
// same id until that transaction ends: on commit the other claim finds the
// delivery completed, on rollback it acquires it. This is what makes
// ClaimTx crash-safe exactly-once.
func TestReplayStoreClaimTxBlocksDuplicate(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		b := setupReplay(t)
		ctx := context.Background()
		tx, err := b.db.App.Begin(ctx)
		require.NoError(t, err)
		c, err := b.store.ClaimTx(ctx, tx, "standard-webhooks", "msg_held", time.Hour)
		require.NoError(t, err)
		require.Equal(t, webhooksig.ClaimAcquired, c.Status)

		type result struct {
			claim webhooksig.Claim
			err   error
		}
		done := make(chan result, 1)
		go func() {
			c, err := b.store.Claim(ctx, "standard-webhooks", "msg_held", time.Hour)
			done <- result{c, err}
		}()
		require.Eventually(t, func() bool {
			var waiting bool
			err := b.db.Admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%webhooksig_deliveries%')`).Scan(&waiting)
			return err == nil && waiting
		}, 10*time.Second, 10*time.Millisecond, "the duplicate waits on the open claim")
		require.Empty(t, done)

		want := webhooksig.ClaimAcquired
		if commit {
			require.NoError(t, tx.Commit(ctx))
			want = webhooksig.ClaimCompleted
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		got := <-done
		require.NoError(t, got.err)
		require.Equal(t, want, got.claim.Status, "commit=%v", commit)
	}
}

func TestSweeper(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	claim := func(verifier, id string) webhooksig.Claim {
		c, err := b.store.Claim(ctx, verifier, id, time.Hour)
		require.NoError(t, err)
		require.Equal(t, webhooksig.ClaimAcquired, c.Status)
		return c
	}
	for i := range 5 {
		id := "expired-" + strconv.Itoa(i)
		require.NoError(t, b.store.Complete(ctx, "stripe", id, claim("stripe", id).Token))
	}
	require.NoError(t, b.store.Complete(ctx, "stripe", "fresh", claim("stripe", "fresh").Token))
	claim("github", "dead")
	claim("github", "live")
	b.exec(t, `UPDATE platform.webhooksig_deliveries SET expires_at = now() - interval '1 second' WHERE delivery_id <> 'fresh'`)
	b.exec(t, `UPDATE platform.webhooksig_deliveries SET lease_until = now() - interval '1 second' WHERE delivery_id = 'dead'`)

	sw, err := webhooksig.NewSweeper(b.db.App, webhooksig.SweeperConfig{BatchSize: 2})
	require.NoError(t, err)
	n, err := sw.SweepOnce(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 6, n, "five expired completed deliveries and the dead holder's, in batches of two")

	var left []string
	rows, err := b.db.Admin.Query(ctx, "SELECT delivery_id FROM platform.webhooksig_deliveries ORDER BY delivery_id")
	require.NoError(t, err)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"fresh", "live"}, left, "unexpired and live-lease deliveries stay")

	n, err = sw.SweepOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	for _, cfg := range []webhooksig.SweeperConfig{{BatchSize: -1}, {Interval: -time.Second}} {
		_, err := webhooksig.NewSweeper(b.db.App, cfg)
		require.ErrorIs(t, err, webhooksig.ErrInvalidConfig)
	}
	_, err = webhooksig.NewSweeper(nil, webhooksig.SweeperConfig{})
	require.ErrorIs(t, err, webhooksig.ErrInvalidConfig)
}

func TestSweeperRunStopsWithItsContext(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	c, err := b.store.Claim(ctx, "stripe", "evt_old", time.Hour)
	require.NoError(t, err)
	require.NoError(t, b.store.Complete(ctx, "stripe", "evt_old", c.Token))
	b.exec(t, `UPDATE platform.webhooksig_deliveries SET expires_at = now() - interval '1 second'`)

	sw, err := webhooksig.NewSweeper(b.db.App, webhooksig.SweeperConfig{Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sw.Run(runCtx) }()
	require.Eventually(t, func() bool { return b.rows(t) == 0 }, 10*time.Second, 10*time.Millisecond, "Run sweeps at once")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// postStatus sends a request and returns its status, or -1 when it fails;
// safe to call from any goroutine.
func postStatus(url string, body []byte, h http.Header) int {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return -1
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}
