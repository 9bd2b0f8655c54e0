package webhooksig

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/problem"
)

// ReplayAction says what the middleware does with a delivery id it has
// already seen.
type ReplayAction int

const (
	// RejectReplay answers 409 Conflict with a problem+json body.
	RejectReplay ReplayAction = iota
	// AcknowledgeReplay answers 200 OK without calling the handler, so a
	// sender that retries a delivery it thinks was lost stops retrying.
	AcknowledgeReplay
)

const (
	// DefaultMaxBodyBytes is Config.MaxBodyBytes's default.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultReplayTTL is Config.ReplayTTL's default: Stripe and Standard
	// Webhooks senders retry for up to three days.
	DefaultReplayTTL = 72 * time.Hour
)

// Config configures a Middleware.
type Config struct {
	// MaxBodyBytes is the largest body accepted; a longer one gets 413.
	// Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Replay, if set, turns the replay guard on: each verified delivery is
	// claimed in the store before the handler runs, held under a renewed
	// lease while it runs, and recorded as completed only after a 2xx
	// answer (see Handler). Default nil (off).
	Replay *ReplayStore
	// ReplayTTL is how long a completed delivery is remembered. It should
	// exceed the verifier's timestamp tolerance and the sender's retry
	// period. Default DefaultReplayTTL (72 hours).
	ReplayTTL time.Duration
	// OnReplay is what happens to a delivery that was already completed.
	// Default RejectReplay. A delivery still being processed by another
	// request always gets 409 Conflict with Retry-After: it may yet fail,
	// and the sender must try again.
	OnReplay ReplayAction
	// URL returns the absolute URL the sender addressed, which HubSpot v2
	// and v3 sign. Default: "https://" + r.Host + r.RequestURI, right for a
	// server behind a TLS-terminating proxy that keeps the Host header.
	URL func(r *http.Request) string
	// Logger receives one record per rejected request (verifier and failed
	// check; never a secret or signature). Default slog.Default().
	Logger *slog.Logger
}

// Middleware verifies webhook requests with a Verifier before they reach
// the handler. Create it with New; use Handler to wrap a handler.
type Middleware struct {
	verifier Verifier
	cfg      Config
}

// New returns a Middleware for v, or an error wrapping ErrInvalidConfig.
func New(v Verifier, cfg Config) (*Middleware, error) {
	switch {
	case v == nil:
		return nil, errs.Config("webhooksig", "nil verifier")
	case cfg.MaxBodyBytes < 0:
		return nil, errs.Config("webhooksig", "negative MaxBodyBytes %d", cfg.MaxBodyBytes)
	case cfg.ReplayTTL < 0:
		return nil, errs.Config("webhooksig", "negative ReplayTTL %s", cfg.ReplayTTL)
	case cfg.OnReplay != RejectReplay && cfg.OnReplay != AcknowledgeReplay:
		return nil, errs.Config("webhooksig", "unknown OnReplay action %d", cfg.OnReplay)
	}
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.ReplayTTL = cmp.Or(cfg.ReplayTTL, DefaultReplayTTL)
	if cfg.URL == nil {
		cfg.URL = defaultURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Middleware{verifier: v, cfg: cfg}, nil
}

func defaultURL(r *http.Request) string {
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	return "https://" + r.Host + uri
}

type deliveryKey struct{}

// DeliveryFromContext returns the delivery the middleware verified for the
// request whose context ctx is.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// Handler returns next wrapped: the body is read up to MaxBodyBytes and
// verified; a failed check is answered with problem+json (400, 401 or 413)
// and next is not called; a verified request reaches next with its body
// intact and its Delivery in the context.
//
// With the replay guard on, the delivery is claimed before next runs and
// its lease renewed while next runs. It is recorded as completed only when
// next returns normally having answered 2xx (an implicit 200, with nothing
// written, counts only while the request's context is live: a handler that
// gave up on a cancelled context did not process the event). On any other
// outcome (a non-2xx answer, a panic, a context cancelled before anything
// was written) the claim is released, so the sender's retry reaches next
// again. A delivery already completed gets 409 or 200 (OnReplay); one that
// another request is processing gets 409 with Retry-After; next is not
// called for either.
func (mw *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, mw.verifier.Name(), mw.cfg.MaxBodyBytes)
		if err != nil {
			mw.reject(w, r, err)
			return
		}
		d, err := mw.verifier.Verify(&Message{Method: r.Method, URL: mw.cfg.URL(r), Header: r.Header, Body: body})
		if err != nil {
			mw.reject(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r = r.WithContext(context.WithValue(r.Context(), deliveryKey{}, d))
		if mw.cfg.Replay == nil || d.ID == "" {
			next.ServeHTTP(w, r)
			return
		}
		mw.serveOnce(w, r, d, next)
	})
}

// claimTimeout bounds each statement of the replay guard, which runs
// detached from the request's cancellation.
const claimTimeout = 10 * time.Second

// serveOnce claims the delivery, calls next while renewing the claim, and
// completes or releases it by next's outcome.
func (mw *Middleware) serveOnce(w http.ResponseWriter, r *http.Request, d Delivery, next http.Handler) {
	// The claim is not cancelled with the request: a statement cut off
	// half-way may still commit on the server, leaving a claim nobody
	// holds until its lease runs out.
	claimCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), claimTimeout)
	claim, err := mw.cfg.Replay.Claim(claimCtx, d.Verifier, d.ID, mw.cfg.ReplayTTL)
	cancel()
	if err != nil {
		mw.cfg.Logger.ErrorContext(r.Context(), "webhooksig: replay guard unavailable", "verifier", d.Verifier, "error", err)
		w.Header().Set("Retry-After", "30")
		problem.Status(w, http.StatusServiceUnavailable, "the replay guard is unavailable; retry later")
		return
	}
	switch claim.Status {
	case ClaimInProgress:
		mw.cfg.Logger.InfoContext(r.Context(), "webhooksig: delivery in progress elsewhere", "verifier", d.Verifier)
		err := &Error{Verifier: d.Verifier, Field: "delivery", Err: ErrInProgress}
		recordRejection(r.Context(), d.Verifier, err)
		w.Header().Set("Retry-After", strconv.FormatInt(int64(claim.RetryAfter/time.Second), 10))
		problem.Status(w, http.StatusConflict, err.Error())
		return
	case ClaimCompleted:
		mw.cfg.Logger.InfoContext(r.Context(), "webhooksig: replayed delivery", "verifier", d.Verifier)
		if mw.cfg.OnReplay == AcknowledgeReplay {
			w.WriteHeader(http.StatusOK)
			return
		}
		err := &Error{Verifier: d.Verifier, Field: "delivery", Err: ErrReplayed}
		recordRejection(r.Context(), d.Verifier, err)
		problem.Status(w, http.StatusConflict, err.Error())
		return
	}

	stopRenewing := mw.renewWhileRunning(r.Context(), d, claim.Token)
	rec := &statusRecorder{ResponseWriter: w}
	returned := false
	defer func() {
		stopRenewing()
		processed := returned && rec.status >= 200 && rec.status < 300 && (rec.wrote || r.Context().Err() == nil)
		mw.endClaim(r.Context(), d, claim.Token, processed)
	}()
	next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK // net/http answers 200 for a handler that wrote nothing
	}
	returned = true
}

// renewWhileRunning renews the claim every third of the lease until the
// returned function is called, so a handler that outlasts the lease keeps
// its claim while its process lives. Renewal is detached from the
// request's cancellation: a sender that hung up does not stop a handler
// that is still working.
func (mw *Middleware) renewWhileRunning(ctx context.Context, d Delivery, token string) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker := time.NewTicker(mw.cfg.Replay.lease / 3)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			if _, err := mw.cfg.Replay.Renew(ctx, d.Verifier, d.ID, token); err != nil && ctx.Err() == nil {
				mw.cfg.Logger.ErrorContext(ctx, "webhooksig: renew delivery claim", "verifier", d.Verifier, "error", err)
				if errors.Is(err, ErrClaimLost) {
					return
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// endClaim completes or releases the claim. It runs detached from the
// request's cancellation (a sender that hung up must not leave the claim
// held), bounded by its own timeout. When it fails the claim stays in
// progress until its lease ends, after which a retry is processed again.
func (mw *Middleware) endClaim(ctx context.Context, d Delivery, token string, processed bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimTimeout)
	defer cancel()
	op, end := "release", mw.cfg.Replay.Release
	if processed {
		op, end = "complete", mw.cfg.Replay.Complete
	}
	if err := end(ctx, d.Verifier, d.ID, token); err != nil {
		mw.cfg.Logger.ErrorContext(ctx, "webhooksig: "+op+" delivery claim", "verifier", d.Verifier, "error", err)
	}
}

func (mw *Middleware) reject(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusCode(err)
	recordRejection(r.Context(), mw.verifier.Name(), err)
	mw.cfg.Logger.InfoContext(r.Context(), "webhooksig: rejected request", "verifier", mw.verifier.Name(), "status", status, "error", err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Signature realm="webhook"`)
	}
	problem.Status(w, status, err.Error())
}

// readBody reads the whole body, at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, verifier string, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, fail(verifier, "body", ErrBodyTooLarge)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fail(verifier, "body", ErrBodyTooLarge)
	case err != nil:
		return nil, fail(verifier, "body", ErrMalformedBody)
	}
	return body, nil
}

// statusRecorder remembers the status the handler wrote, and whether it
// wrote anything, so the claim is completed or released by the outcome.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client; a flush commits the status.
func (s *statusRecorder) Flush() {
	if s.status == 0 {
		s.status, s.wrote = http.StatusOK, true
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
