package webhooksig

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

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

// DefaultMaxBodyBytes is the default body limit of the middleware.
const DefaultMaxBodyBytes = 1 << 20

// Config configures a Middleware.
type Config struct {
	// MaxBodyBytes is the largest body accepted; a longer one gets 413.
	// Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Replay, if set, turns the replay guard on: each verified delivery id
	// is claimed in the store before the handler runs. A delivery without
	// an id (a Moyasar event without "id") is not guarded. Default nil (off).
	Replay *ReplayStore
	// ReplayTTL is how long a delivery id is remembered. It should exceed
	// the verifier's timestamp tolerance and the sender's retry period.
	// Default 72 hours (Stripe and Standard Webhooks senders retry for up
	// to three days).
	ReplayTTL time.Duration
	// OnReplay is what happens to a replayed delivery. Default RejectReplay.
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
		return nil, errors.Join(ErrInvalidConfig, errors.New("nil verifier"))
	case cfg.MaxBodyBytes < 0:
		return nil, errors.Join(ErrInvalidConfig, errors.New("negative MaxBodyBytes"))
	case cfg.ReplayTTL < 0:
		return nil, errors.Join(ErrInvalidConfig, errors.New("negative ReplayTTL"))
	case cfg.OnReplay != RejectReplay && cfg.OnReplay != AcknowledgeReplay:
		return nil, errors.Join(ErrInvalidConfig, errors.New("unknown OnReplay action"))
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReplayTTL == 0 {
		cfg.ReplayTTL = 72 * time.Hour
	}
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
// intact and its Delivery in the context. With the replay guard on, a
// replayed delivery gets 409 or 200 (OnReplay) and next is not called; if
// next answers 5xx or panics, the claim is released so the sender's retry
// is processed.
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

// serveOnce claims the delivery id, then calls next.
func (mw *Middleware) serveOnce(w http.ResponseWriter, r *http.Request, d Delivery, next http.Handler) {
	first, err := mw.cfg.Replay.Claim(r.Context(), d.Verifier, d.ID, mw.cfg.ReplayTTL)
	if err != nil {
		mw.cfg.Logger.ErrorContext(r.Context(), "webhooksig: replay guard unavailable", "verifier", d.Verifier, "error", err)
		w.Header().Set("Retry-After", "30")
		problem.Status(w, http.StatusServiceUnavailable, "the replay guard is unavailable; retry later")
		return
	}
	if !first {
		mw.cfg.Logger.InfoContext(r.Context(), "webhooksig: replayed delivery", "verifier", d.Verifier)
		if mw.cfg.OnReplay == AcknowledgeReplay {
			w.WriteHeader(http.StatusOK)
			return
		}
		problem.Status(w, http.StatusConflict, (&Error{Verifier: d.Verifier, Field: "delivery", Err: ErrReplayed}).Error())
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	completed := false
	defer func() {
		if !completed || rec.status >= 500 {
			mw.release(r.Context(), d)
		}
	}()
	next.ServeHTTP(rec, r)
	completed = true
}

func (mw *Middleware) release(ctx context.Context, d Delivery) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := mw.cfg.Replay.Release(ctx, d.Verifier, d.ID); err != nil {
		mw.cfg.Logger.ErrorContext(ctx, "webhooksig: release delivery after failure", "verifier", d.Verifier, "error", err)
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

// statusRecorder remembers the status the handler wrote, so a failed
// delivery can be released.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
