// Package httpx holds the request and response plumbing the reference
// server's handlers share: strict JSON decoding, JSON and problem+json
// answers, and the one place a handler gets its tenant-scoped transaction.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

// DefaultMaxBodyBytes bounds a JSON request body when the caller gives no
// other bound (1 MiB).
const DefaultMaxBodyBytes = 1 << 20

// Error is a client-facing failure: it carries the status and a detail
// safe to show. Handlers return it from their helpers and Fail writes it.
type Error struct {
	Status int
	Detail string
	// Extensions are extra problem members, for example "errors".
	Extensions map[string]any
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + ": " + e.Detail }

// Errorf builds an *Error.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, args...)}
}

// Fail answers with err as problem+json. An *Error keeps its status and
// detail. An error for which Unavailable holds (the database unreachable,
// restarting, or no connection free before the deadline) becomes a 503
// with Retry-After: 1, since the same request may succeed shortly.
// Anything else is logged and becomes a 500 whose detail says nothing
// about the cause (client mistakes are all *Error before they get here).
// A context cancelled because the client left is logged at debug.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	if errors.As(err, &e) {
		werr := problem.Write(w, problem.Details{Status: e.Status, Detail: e.Detail, Extensions: e.Extensions})
		if werr == nil {
			return
		}
		// The handler built a problem Write refuses (a reserved member or
		// a status outside 4xx–5xx): answer it as the server's bug it is,
		// never with an empty 200.
		err = fmt.Errorf("unwritable problem for %w: %v", err, werr)
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		log.DebugContext(r.Context(), "request abandoned by the client", "error", err)
		problem.Status(w, http.StatusServiceUnavailable, "the request was abandoned")
		return
	}
	if Unavailable(err) {
		// The database is down, restarting or saturated: the client
		// may retry, and nothing about the cause is shown.
		log.WarnContext(r.Context(), "request failed: database unavailable", "method", r.Method, "path", r.URL.Path, "error", err)
		w.Header().Set("Retry-After", RetryAfterSeconds)
		problem.Status(w, http.StatusServiceUnavailable, "the service is temporarily unavailable; retry shortly")
		return
	}
	log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	problem.Status(w, http.StatusInternalServerError, "internal error")
}

// JSON answers with v encoded as JSON and the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Status(w, http.StatusInternalServerError, "internal error")
		return
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Decode reads r's body as exactly one JSON value into dst. Unknown
// fields, trailing data, a wrong type or a syntax error are 400; a body
// over maxBytes is 413; a content type other than JSON is 415. Every
// failure is an *Error, never a 500.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any, mediaTypes ...string) error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBodyBytes
	}
	if err := checkContentType(r, mediaTypes); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, maxBytes)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return decodeError(err, maxBytes)
		}
		return Errorf(http.StatusBadRequest, "the request body must hold exactly one JSON value")
	}
	return nil
}

func checkContentType(r *http.Request, allowed []string) error {
	if len(allowed) == 0 {
		allowed = []string{"application/json"}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s", strings.Join(allowed, " or "))
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return Errorf(http.StatusUnsupportedMediaType, "malformed Content-Type")
	}
	for _, a := range allowed {
		if strings.EqualFold(mt, a) {
			return nil
		}
	}
	return Errorf(http.StatusUnsupportedMediaType, "Content-Type must be %s", strings.Join(allowed, " or "))
}

func decodeError(err error, maxBytes int64) error {
	var (
		tooLarge  *http.MaxBytesError
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooLarge):
		return Errorf(http.StatusRequestEntityTooLarge, "the request body exceeds %d bytes", maxBytes)
	case errors.As(err, &syntax):
		return Errorf(http.StatusBadRequest, "malformed JSON at byte %d", syntax.Offset)
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, "the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, "malformed JSON: the body ends early")
	case errors.As(err, &typeError):
		if typeError.Field != "" {
			return Errorf(http.StatusBadRequest, "field %q must be a JSON %s", typeError.Field, jsonKind(typeError.Type.Kind().String()))
		}
		return Errorf(http.StatusBadRequest, "the request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no typed error for DisallowUnknownFields.
		return Errorf(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return Errorf(http.StatusBadRequest, "malformed JSON")
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "struct", "map", "ptr":
		return "object"
	case "bool":
		return "boolean"
	default:
		return "number"
	}
}

// DB begins transactions: the app role's pool.
type DB = tenancy.Beginner

// InTx runs fn in the request's tenant-scoped transaction. When the
// idempotency middleware (transactional mode) opened one for the request,
// fn runs in it, so the handler's writes commit together with the stored
// response; otherwise fn runs in a transaction of its own on db, scoped to
// the request's tenant, waiting at most AcquireTimeout for a connection.
// These are the only two calls into the library a
// handler makes to reach the database.
func InTx(r *http.Request, db DB, fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx := r.Context()
	if tx, ok := idempotency.TxFrom(ctx); ok {
		return fn(ctx, tx)
	}
	return tenancy.InTx(ctx, bounded(db), func(tx pgx.Tx) error { return fn(ctx, tx) })
}

// AcquireTimeout bounds how long InTx waits for a connection and its
// BEGIN when it opens the transaction itself. Without it a request would
// wait on an exhausted pool for as long as the client waits, and every
// waiting request holds a goroutine and its memory; with it the request
// fails with a deadline Fail answers as 503 with Retry-After.
const AcquireTimeout = 5 * time.Second

// acquireBound applies AcquireTimeout to opening the transaction only:
// once BEGIN has returned, the transaction runs under the request's own
// context. It offers BeginTx as pools and connections do, so tenancy.InTx
// still takes it for a new transaction (one round trip with the tenant)
// rather than a savepoint of the caller's.
type acquireBound struct{ db txBeginner }

type txBeginner interface {
	DB
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

func (a acquireBound) Begin(ctx context.Context) (pgx.Tx, error) {
	actx, cancel := context.WithTimeout(ctx, AcquireTimeout)
	defer cancel()
	return a.db.Begin(actx)
}

func (a acquireBound) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	actx, cancel := context.WithTimeout(ctx, AcquireTimeout)
	defer cancel()
	return a.db.BeginTx(actx, opts)
}

// bounded wraps db in acquireBound when it opens new transactions (a pool
// or a connection); a caller's pgx.Tx is handed on as it is.
func bounded(db DB) DB {
	if b, ok := db.(txBeginner); ok {
		return acquireBound{b}
	}
	return db
}

// TenantOf is the tenant ctx carries ("" without one). Statements name it
// besides row-level security's own predicate: a database sharded by
// tenant_id (Citus) routes a statement to one shard only when the
// statement names the tenant itself. Inside InTx, tenancy.InTx or a queue
// handler the tenant is always there.
func TenantOf(ctx context.Context) string {
	t, _ := tenancy.TenantFrom(ctx)
	return t
}
