package webhooksig_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/webhooksig"
)

// replayBundle is a database, a store on the serving role and a clock.
type replayBundle struct {
	db    *pgtest.DB
	store *webhooksig.ReplayStore
	now   *atomic.Pointer[time.Time]
}

func setupReplay(t *testing.T) *replayBundle {
	t.Helper()
	db := pgtest.New(t)
	now := &atomic.Pointer[time.Time]{}
	start := fixedNow
	now.Store(&start)
	store, err := webhooksig.NewReplayStore(db.App, webhooksig.ReplayStoreConfig{Now: func() time.Time { return *now.Load() }})
	require.NoError(t, err)
	return &replayBundle{db: db, store: store, now: now}
}

func (b *replayBundle) advance(d time.Duration) {
	next := b.now.Load().Add(d)
	b.now.Store(&next)
}

func (b *replayBundle) rows(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.Admin.QueryRow(context.Background(), "SELECT count(*) FROM platform.webhooksig_deliveries").Scan(&n))
	return n
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
	resp, doc := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Contains(t, doc["detail"], "already received")
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

// Two deliveries of one id at the same time: exactly one reaches the
// handler, and it is still running when the other is answered.
func TestReplayConcurrentDoubleDelivery(t *testing.T) {
	t.Parallel()
	for _, action := range []webhooksig.ReplayAction{webhooksig.RejectReplay, webhooksig.AcknowledgeReplay} {
		b := setupReplay(t)
		var calls atomic.Int32
		release := make(chan struct{})
		srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store, OnReplay: action},
			http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				<-release
				w.WriteHeader(http.StatusAccepted)
			}))
		body := []byte(`{"type":"order.created"}`)
		h := standardRequest(t, standardSecret, "msg_double", body)

		statuses := make(chan int, 2)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { statuses <- postStatus(srv.URL, body, h) })
		}
		first := <-statuses // the duplicate, answered while the original is held
		close(release)
		wg.Wait()
		second := <-statuses
		want := http.StatusConflict
		if action == webhooksig.AcknowledgeReplay {
			want = http.StatusOK
		}
		require.Equal(t, want, first)
		require.Equal(t, http.StatusAccepted, second)
		require.EqualValues(t, 1, calls.Load())
	}
}

func TestReplayReleasedWhenHandlerFails(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	var calls atomic.Int32
	srv := serve(t, newStandard(t), webhooksig.Config{Replay: b.store}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			http.Error(w, "database down", http.StatusInternalServerError)
		case 2:
			panic(http.ErrAbortHandler) // a crashed handler also frees the id
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	body := []byte(`{}`)
	h := standardRequest(t, standardSecret, "msg_retry", body)
	resp, _ := post(t, srv.URL, body, h)
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Zero(t, b.rows(t))

	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header = h.Clone()
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err, "the aborted handler closes the connection")
	require.Eventually(t, func() bool { return b.rows(t) == 0 }, 5*time.Second, 10*time.Millisecond)

	resp, _ = post(t, srv.URL, body, h)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = post(t, srv.URL, body, h)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.EqualValues(t, 3, calls.Load())
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
	var wins atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			first, err := b.store.Claim(ctx, "stripe", "evt_race", time.Hour)
			errs <- err
			if first {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, wins.Load())
	require.Equal(t, 1, b.rows(t))
}

func TestReplayStoreExpiryAndSweep(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	first, err := b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.True(t, first)
	first, err = b.store.Claim(ctx, "slack", "d-1", time.Hour)
	require.NoError(t, err)
	require.True(t, first, "ids are scoped by verifier")

	b.advance(59 * time.Minute)
	first, err = b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.False(t, first, "inside the TTL")

	b.advance(time.Minute)
	first, err = b.store.Claim(ctx, "github", "d-1", time.Hour)
	require.NoError(t, err)
	require.True(t, first, "an expired claim is taken over")

	tx, err := b.db.App.Begin(ctx)
	require.NoError(t, err)
	n, err := b.store.SweepTx(ctx, tx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the slack claim has expired")
	require.NoError(t, tx.Commit(ctx))

	b.advance(time.Hour)
	n, err = b.store.Sweep(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Zero(t, b.rows(t))
}

func TestReplayStoreClaimTx(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()

	tx, err := b.db.App.Begin(ctx)
	require.NoError(t, err)
	first, err := b.store.ClaimTx(ctx, tx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.True(t, first)
	require.NoError(t, tx.Rollback(ctx))
	require.Zero(t, b.rows(t), "the claim rolled back with the caller's transaction")

	tx, err = b.db.App.Begin(ctx)
	require.NoError(t, err)
	first, err = b.store.ClaimTx(ctx, tx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.True(t, first)
	require.NoError(t, tx.Commit(ctx))
	first, err = b.store.Claim(ctx, "stripe", "evt_tx", time.Hour)
	require.NoError(t, err)
	require.False(t, first)

	tx, err = b.db.App.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, b.store.ReleaseTx(ctx, tx, "stripe", "evt_tx"))
	require.NoError(t, tx.Commit(ctx))
	require.Zero(t, b.rows(t))
}

func TestReplayStoreInput(t *testing.T) {
	t.Parallel()
	b := setupReplay(t)
	ctx := context.Background()
	for _, args := range [][2]string{{"", "id"}, {"github", ""}} {
		_, err := b.store.Claim(ctx, args[0], args[1], time.Hour)
		require.ErrorIs(t, err, webhooksig.ErrInvalidDelivery)
		require.ErrorIs(t, b.store.Release(ctx, args[0], args[1]), webhooksig.ErrInvalidDelivery)
	}
	_, err := b.store.Claim(ctx, "github", "id", 0)
	require.ErrorIs(t, err, webhooksig.ErrInvalidDelivery)

	long := strings.Repeat("x", 10_000) // beyond a btree entry: stored as its digest
	first, err := b.store.Claim(ctx, "github", long, time.Hour)
	require.NoError(t, err)
	require.True(t, first)
	first, err = b.store.Claim(ctx, "github", long, time.Hour)
	require.NoError(t, err)
	require.False(t, first)
	first, err = b.store.Claim(ctx, "github", long+"y", time.Hour)
	require.NoError(t, err)
	require.True(t, first)

	_, err = webhooksig.NewReplayStore(nil, webhooksig.ReplayStoreConfig{})
	require.ErrorIs(t, err, webhooksig.ErrInvalidConfig)
}

// A claim inside an open transaction holds back a concurrent claim of the
// same id until that transaction ends: on commit the other claim loses, on
// rollback it wins. This is what makes ClaimTx crash-safe exactly-once.
func TestReplayStoreClaimTxBlocksDuplicate(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		b := setupReplay(t)
		ctx := context.Background()
		tx, err := b.db.App.Begin(ctx)
		require.NoError(t, err)
		first, err := b.store.ClaimTx(ctx, tx, "standard-webhooks", "msg_held", time.Hour)
		require.NoError(t, err)
		require.True(t, first)

		type result struct {
			first bool
			err   error
		}
		done := make(chan result, 1)
		go func() {
			first, err := b.store.Claim(ctx, "standard-webhooks", "msg_held", time.Hour)
			done <- result{first, err}
		}()
		require.Eventually(t, func() bool {
			var waiting bool
			err := b.db.Admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%webhooksig_deliveries%')`).Scan(&waiting)
			return err == nil && waiting
		}, 10*time.Second, 10*time.Millisecond, "the duplicate waits on the open claim")
		require.Empty(t, done)

		if commit {
			require.NoError(t, tx.Commit(ctx))
		} else {
			require.NoError(t, tx.Rollback(ctx))
		}
		got := <-done
		require.NoError(t, got.err)
		require.Equal(t, !commit, got.first, "commit=%v", commit)
	}
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
