package idempotency

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

const (
	// DefaultMaxBodyBytes is Config.MaxBodyBytes's default (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxResponseBytes is Config.MaxResponseBytes's default (1 MiB).
	DefaultMaxResponseBytes = 1 << 20
	// DefaultRetryAfter is Config.RetryAfter's default.
	DefaultRetryAfter = time.Second
	// DefaultStoreTimeout is Config.StoreTimeout's default.
	DefaultStoreTimeout = 5 * time.Second
)

// DefaultMethods are the methods the middleware applies to by default.
var DefaultMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch}

// DefaultStoredHeaders are the response headers stored and replayed by
// default. Set-Cookie and other per-response headers are deliberately not
// among them.
var DefaultStoredHeaders = []string{
	"Content-Type", "Content-Language", "Content-Location", "Location",
	"ETag", "Last-Modified", "Cache-Control", "Link",
}

// Config configures a Middleware. The zero value is usable: every field
// documents its default.
type Config struct {
	// Methods are the request methods the middleware applies to; requests
	// with other methods pass through untouched. Default: DefaultMethods
	// (POST, PUT, PATCH).
	Methods []string
	// RequireKey makes the key mandatory: a request with one of Methods and
	// no Idempotency-Key header gets 400. Default false: such a request
	// passes through without idempotency. Use two middlewares to require
	// the key on some routes only.
	RequireKey bool
	// MaxBodyBytes bounds the request body, which is read whole to compute
	// the fingerprint and then handed on intact. A larger body gets 413.
	// Default: DefaultMaxBodyBytes (1 MiB). Must not be negative.
	MaxBodyBytes int64
	// MaxResponseBytes bounds the stored response body. A larger response
	// is still sent to the client, but its body is not stored: the key is
	// completed with the status only, and a retry gets 409 problem+json
	// (extension "original_status") instead of a replay, so the operation
	// never runs twice. Default: DefaultMaxResponseBytes (1 MiB). Must not
	// be negative.
	MaxResponseBytes int
	// StoredHeaders names the response headers stored and replayed.
	// Default: DefaultStoredHeaders.
	StoredHeaders []string
	// StoreServerErrors stores 5xx responses and replays them, as Stripe
	// does. Default false: on a 5xx the claim is released so a retry runs
	// the handler again. Ignored in Transactional mode, where a 5xx always
	// rolls back the handler's writes together with the claim.
	StoreServerErrors bool
	// RetryAfter is the Retry-After sent with 409 while another request
	// with the key runs, rounded up to whole seconds. Default:
	// DefaultRetryAfter (1 second).
	RetryAfter time.Duration
	// Transactional runs the claim, the handler and the stored response in
	// one tenant-scoped transaction of the store's database; the handler
	// takes it with TxFrom and does its writes in it. See the package
	// documentation for when to use it. Default false.
	Transactional bool
	// NoTenant answers a request that carries a key but no tenant (no
	// tenancy.WithTenant on its context: authentication did not run).
	// Default: 403 problem+json; the handler is not run.
	NoTenant http.Handler
	// LeaseRenewal is how often a claim's lease is renewed while the handler
	// runs (claim mode), so a handler slower than StoreConfig.Lease keeps
	// its key and only a claim whose holder died runs out. Default: a third
	// of the store's Lease. Must be shorter than the Lease.
	LeaseRenewal time.Duration
	// StoreTimeout bounds the store calls made after the handler returned
	// (complete, release, commit); they run on a context detached from the
	// request's, so a client that goes away cannot leave a key stuck.
	// Default: DefaultStoreTimeout (5 seconds).
	StoreTimeout time.Duration
	// Logger receives store failures. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults(lease time.Duration) error {
	if c.MaxBodyBytes < 0 || c.MaxResponseBytes < 0 || c.RetryAfter < 0 || c.StoreTimeout < 0 || c.LeaseRenewal < 0 {
		return errs.Config("idempotency", "sizes and durations must not be negative")
	}
	if c.Methods == nil {
		c.Methods = DefaultMethods
	}
	if len(c.Methods) == 0 {
		return errs.Config("idempotency", "no methods")
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.StoredHeaders == nil {
		c.StoredHeaders = DefaultStoredHeaders
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = DefaultStoreTimeout
	}
	if c.LeaseRenewal == 0 {
		c.LeaseRenewal = lease / 3
	}
	if c.LeaseRenewal >= lease {
		return errs.Config("idempotency", "LeaseRenewal %s is not shorter than the store's Lease %s", c.LeaseRenewal, lease)
	}
	if c.NoTenant == nil {
		c.NoTenant = http.HandlerFunc(noTenant)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Middleware makes POST, PUT and PATCH requests that carry an
// Idempotency-Key header idempotent per tenant. Build it with
// NewMiddleware and wrap handlers with Handler.
type Middleware struct {
	store   *Store
	cfg     Config
	methods map[string]bool
	headers []string
}

// NewMiddleware returns a Middleware storing keys in store.
func NewMiddleware(store *Store, cfg Config) (*Middleware, error) {
	if store == nil {
		return nil, errs.Config("idempotency", "nil store")
	}
	if err := cfg.setDefaults(store.cfg.Lease); err != nil {
		return nil, err
	}
	m := &Middleware{store: store, cfg: cfg, methods: map[string]bool{}}
	for _, method := range cfg.Methods {
		m.methods[method] = true
	}
	for _, name := range cfg.StoredHeaders {
		m.headers = append(m.headers, http.CanonicalHeaderKey(name))
	}
	return m, nil
}

// Handler wraps next. For a request with one of the configured methods and
// an Idempotency-Key header it answers:
//
//   - first request: claims the key, runs next, stores its response and
//     returns it;
//   - a retry after completion: the stored status, headers and body, with
//     Idempotent-Replayed: true; next is not run;
//   - the key held by a request still running: 409 with Retry-After;
//   - the key used before for a different request: 422;
//   - a malformed key: 400; a body over MaxBodyBytes: 413; the store
//     unavailable: 503 (all application/problem+json).
//
// A handler that panics releases the claim (or rolls back the transaction)
// and the panic goes on, unchanged, to the server's recovery.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !m.methods[r.Method] {
			next.ServeHTTP(w, r)
			return
		}
		key, present, err := keyFrom(r)
		switch {
		case err != nil:
			problem.Status(w, http.StatusBadRequest, err.Error())
			return
		case !present && m.cfg.RequireKey:
			problem.Status(w, http.StatusBadRequest, "this request requires an "+HeaderName+" header")
			return
		case !present:
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := tenancy.TenantFrom(r.Context()); !ok {
			m.cfg.NoTenant.ServeHTTP(w, r)
			return
		}
		body, ok := m.readBody(w, r)
		if !ok {
			return
		}
		fp := FingerprintRequest(r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"), body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if m.cfg.Transactional {
			m.serveTx(w, r, next, key, fp)
			return
		}
		m.serve(w, r, next, key, fp)
	})
}

// keyFrom returns the request's key; present is false without the header.
func keyFrom(r *http.Request) (key string, present bool, err error) {
	values := r.Header.Values(HeaderName)
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
		key, err = ParseKey(values[0])
		return key, true, err
	default:
		return "", true, errors.New("idempotency: more than one " + HeaderName + " header")
	}
}

// readBody reads the whole request body within MaxBodyBytes, answering
// 413 or 400 itself when it cannot.
func (m *Middleware) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		problem.Status(w, http.StatusRequestEntityTooLarge,
			"request body exceeds "+strconv.FormatInt(m.cfg.MaxBodyBytes, 10)+" bytes")
		return nil, false
	case err != nil:
		problem.Status(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return body, true
}

// serve runs next under a claim held in the store: the claim commits
// before next runs and the response is stored after it.
func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler, key string, fp Fingerprint) {
	claim, err := m.store.Claim(r.Context(), key, fp)
	if m.answered(w, r, claim, err) {
		return
	}
	rec := newRecorder()
	finished := false
	stopRenewing := m.renewWhileRunning(r, key, claim.Token)
	defer func() {
		stopRenewing()
		if !finished { // next panicked: free the key; the panic goes on
			m.release(r, key, claim.Token, "handler panicked")
		}
	}()
	next.ServeHTTP(rec, r)
	finished = true
	stopRenewing()

	switch {
	case r.Context().Err() != nil && !rec.wrote():
		m.release(r, key, claim.Token, "client went away before a response")
	case rec.statusCode() >= 500 && !m.cfg.StoreServerErrors:
		m.release(r, key, claim.Token, "server error not stored")
	default:
		ctx, cancel := m.detached(r)
		defer cancel()
		if err := m.store.Complete(ctx, key, claim.Token, rec.response(m.headers, m.cfg.MaxResponseBytes)); err != nil {
			m.cfg.Logger.ErrorContext(ctx, "idempotency: storing response failed; a retry will run the handler again once the lease expires",
				"key", key, "error", err)
		}
	}
	rec.flush(w)
}

// renewWhileRunning renews the claim's lease every LeaseRenewal until the
// returned stop is called; stop waits for a renewal in flight, so none runs
// after the claim is completed or released. It may be called twice. A
// timer rather than a goroutine waits, so a handler that finishes within
// LeaseRenewal, the common case, costs no renewal and no goroutine.
func (m *Middleware) renewWhileRunning(r *http.Request, key, token string) (stop func()) {
	var (
		mu      sync.Mutex // held by a renewal in flight and by stop
		stopped bool
		timer   *time.Timer
	)
	mu.Lock()
	defer mu.Unlock()
	timer = time.AfterFunc(m.cfg.LeaseRenewal, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped && m.renew(r, key, token) {
			timer.Reset(m.cfg.LeaseRenewal)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
	}
}

// renew extends the claim's lease once, reporting whether to go on.
func (m *Middleware) renew(r *http.Request, key, token string) bool {
	ctx, cancel := m.detached(r)
	defer cancel()
	_, err := m.store.Renew(ctx, key, token)
	switch {
	case errors.Is(err, ErrClaimLost):
		m.cfg.Logger.WarnContext(ctx, "idempotency: claim lost while the handler ran; its response will not be stored", "key", key)
		return false
	case err != nil:
		m.cfg.Logger.ErrorContext(ctx, "idempotency: renewing the lease failed; retrying at the next interval", "key", key, "error", err)
	}
	return true
}

// detached returns a context for a store call made after the handler: it
// keeps r's values but not its cancellation, and is bounded by StoreTimeout.
func (m *Middleware) detached(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), m.cfg.StoreTimeout)
}

func (m *Middleware) release(r *http.Request, key, token, why string) {
	ctx, cancel := m.detached(r)
	defer cancel()
	if err := m.store.Release(ctx, key, token); err != nil {
		m.cfg.Logger.ErrorContext(ctx, "idempotency: releasing claim failed; the key stays in progress until its lease expires",
			"key", key, "reason", why, "error", err)
	}
}

// answered writes the response to a claim that was not granted (a replay,
// a conflict, a mismatch or a store failure) and reports whether it did.
func (m *Middleware) answered(w http.ResponseWriter, r *http.Request, claim Claim, err error) bool {
	switch {
	case err == nil && claim.Completed != nil:
		recordAnswer(r.Context(), "replayed")
		m.replay(w, claim.Completed)
	case err == nil:
		return false
	case errors.Is(err, ErrInProgress):
		recordAnswer(r.Context(), "conflict")
		m.setRetryAfter(w)
		problem.Status(w, http.StatusConflict, "a request with this "+HeaderName+" is still being processed")
	case errors.Is(err, ErrFingerprintMismatch):
		recordAnswer(r.Context(), "mismatch")
		problem.Status(w, http.StatusUnprocessableEntity,
			"this "+HeaderName+" was used for a different request (method, path, query, content type or body)")
	default:
		recordAnswer(r.Context(), "unavailable")
		m.cfg.Logger.ErrorContext(r.Context(), "idempotency: claim failed", "error", err)
		m.setRetryAfter(w)
		problem.Status(w, http.StatusServiceUnavailable, "idempotency store unavailable")
	}
	return true
}

// setRetryAfter tells the client when to try again (Config.RetryAfter,
// in whole seconds): on a 409 while the key is in progress and on a 503
// while the store is unavailable.
func (m *Middleware) setRetryAfter(w http.ResponseWriter) {
	secs := int64((m.cfg.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

func (m *Middleware) replay(w http.ResponseWriter, resp *Response) {
	if resp.BodyOmitted {
		_ = problem.Write(w, problem.Details{
			Status:     http.StatusConflict,
			Detail:     "the request with this " + HeaderName + " completed, but its response was too large to store and cannot be replayed",
			Extensions: map[string]any{"original_status": resp.Status},
		})
		return
	}
	writeResponse(w, resp)
}

func noTenant(w http.ResponseWriter, _ *http.Request) {
	problem.Status(w, http.StatusForbidden, "idempotency keys are scoped to a tenant and the request carries none")
}
