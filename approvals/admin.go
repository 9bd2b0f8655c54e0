package approvals

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

// Admin API defaults.
const (
	// DefaultAdminScope is AdminConfig.Scope's default.
	DefaultAdminScope = "approvals:admin"
	// DefaultMaxBodyBytes is AdminConfig.MaxBodyBytes's default.
	DefaultMaxBodyBytes = 16 << 10
)

// Problem types of the admin API, in the "type" member of problem+json
// bodies, so a client can tell the refusals apart.
const (
	ProblemAlreadyDecided = "urn:dealix:approvals:already-decided"
	ProblemExpired        = "urn:dealix:approvals:expired"
	ProblemSelfApproval   = "urn:dealix:approvals:self-approval"
)

// AdminConfig configures the admin handler. Every field documents its
// default.
type AdminConfig struct {
	// Scope is the scope the caller's tenancy.Principal must hold.
	// Default: DefaultAdminScope ("approvals:admin").
	Scope string
	// MaxBodyBytes caps a decision's request body; a larger body is
	// refused with 400. Default: DefaultMaxBodyBytes (16 KiB). Must not be
	// negative.
	MaxBodyBytes int64
	// Logger receives server-side failures. Default: slog.Default().
	Logger *slog.Logger
}

// AdminHandler serves the admin API of a Service. Paths are relative to
// where it is mounted (use http.StripPrefix):
//
//	GET  /requests?status=pending&limit=50&cursor=…  list, newest first
//	GET  /requests/{id}                               one request
//	POST /requests/{id}/approve   {"comment": "…"}    approve
//	POST /requests/{id}/reject    {"comment": "…"}    reject
//	GET  /requests/{id}/audit                         the request's audit trail
//
// It must run behind the tenancy authentication middleware: the caller is
// the tenancy.Principal of the request context, whose tenant scopes every
// call and whose subject is the decider. No principal is answered with
// 401, a principal without the admin scope with 403. Every error is an RFC
// 9457 problem+json body: 400 for bad input (bad id, bad JSON, unknown
// field or status, bad limit or cursor, body over MaxBodyBytes), 404 for an
// unknown request (including another tenant's), 403 for self-approval, and
// 409 for a request already decided the other way (the recorded decision
// is in the "decision" member) or expired. An expired request answers 409
// rather than 410: it still exists and can be read; only deciding it
// conflicts with its state.
type AdminHandler struct {
	svc *Service
	cfg AdminConfig
	mux *http.ServeMux
}

// NewAdminHandler returns the admin API of svc. It validates cfg.
func NewAdminHandler(svc *Service, cfg AdminConfig) (*AdminHandler, error) {
	if svc == nil {
		return nil, errs.Config("approvals", "nil service")
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, errs.Config("approvals", "negative MaxBodyBytes")
	}
	cfg.Scope = cmp.Or(cfg.Scope, DefaultAdminScope)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	h := &AdminHandler{svc: svc, cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("/requests", allow(http.MethodGet, h.list))
	h.mux.HandleFunc("/requests/{id}", allow(http.MethodGet, h.get))
	h.mux.HandleFunc("/requests/{id}/approve", allow(http.MethodPost, h.decideAs(StatusApproved)))
	h.mux.HandleFunc("/requests/{id}/reject", allow(http.MethodPost, h.decideAs(StatusRejected)))
	h.mux.HandleFunc("/requests/{id}/audit", allow(http.MethodGet, h.audit))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		problem.Status(w, http.StatusNotFound, "no such admin endpoint")
	})
	return h, nil
}

// ServeHTTP authorizes the caller, then routes.
func (h *AdminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok || p.Subject == "" || p.TenantID == "" {
		// A principal without a subject could not be recorded as a decider.
		w.Header().Set("WWW-Authenticate", "Bearer")
		problem.Status(w, http.StatusUnauthorized, "authentication required")
		return
	}
	if !p.HasScope(h.cfg.Scope) {
		problem.Status(w, http.StatusForbidden, fmt.Sprintf("scope %q required", h.cfg.Scope))
		return
	}
	h.mux.ServeHTTP(w, r)
}

// allow answers 405, with an Allow header, for any method but method.
func allow(method string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			problem.Status(w, http.StatusMethodNotAllowed, "use "+method)
			return
		}
		next(w, r)
	}
}

func (h *AdminHandler) list(w http.ResponseWriter, r *http.Request) {
	opts, err := parseListQuery(r.URL.RawQuery)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	page, err := h.svc.List(r.Context(), opts)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, page)
}

func (h *AdminHandler) get(w http.ResponseWriter, r *http.Request) {
	req, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, req)
}

func (h *AdminHandler) audit(w http.ResponseWriter, r *http.Request) {
	entries, err := h.svc.AuditTrail(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if entries == nil {
		entries = []AuditEntry{}
	}
	writeJSON(w, struct {
		Entries []AuditEntry `json:"entries"`
	}{entries})
}

func (h *AdminHandler) decideAs(decision Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if _, err := parseRequestID(id); err != nil {
			h.writeError(w, r, err)
			return
		}
		body, err := decodeDecisionBody(r.Body, h.cfg.MaxBodyBytes)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		// The principal's tenant is the context's, and its subject the
		// decider (ServeHTTP made sure there is one).
		p, _ := tenancy.PrincipalFrom(r.Context())
		d, err := h.svc.Decide(r.Context(), DecideInput{
			RequestID: id, Decision: decision, Decider: p.Subject, Comment: body.Comment,
		})
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		writeJSON(w, d)
	}
}

// errBadRequest marks input the admin API refuses before reaching the
// service: malformed JSON or query, or an oversized body.
var errBadRequest = errors.New("approvals: bad request")

// decisionBody is the optional JSON body of approve and reject.
type decisionBody struct {
	Comment string `json:"comment"`
}

// decodeDecisionBody reads at most limit bytes: an empty body means no
// comment; otherwise exactly one JSON object with known members only.
func decodeDecisionBody(body io.Reader, limit int64) (decisionBody, error) {
	var out decisionBody
	if body == nil {
		return out, nil
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return out, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	if int64(len(raw)) > limit {
		return out, fmt.Errorf("%w: body is over %d bytes", errBadRequest, limit)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return out, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return decisionBody{}, fmt.Errorf("%w: body must be a JSON object like {\"comment\": \"…\"}: %v", errBadRequest, err)
	}
	if dec.More() {
		return decisionBody{}, fmt.Errorf("%w: body must hold one JSON object", errBadRequest)
	}
	if _, err := dec.Token(); err != io.EOF {
		return decisionBody{}, fmt.Errorf("%w: unexpected data after the JSON object", errBadRequest)
	}
	return out, nil
}

// parseListQuery reads status, limit and cursor, each at most once; any
// other parameter is refused so a typo does not silently list everything.
// A limit above MaxPageSize is lowered to it.
func parseListQuery(rawQuery string) (ListOptions, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return ListOptions{}, fmt.Errorf("%w: malformed query", errBadRequest)
	}
	var opts ListOptions
	for name, vals := range values {
		if len(vals) != 1 {
			return ListOptions{}, fmt.Errorf("%w: parameter %q given %d times", errBadRequest, name, len(vals))
		}
		v := vals[0]
		switch name {
		case "status":
			opts.Status = Status(v)
			if !opts.Status.Valid() {
				return ListOptions{}, fmt.Errorf("%w: unknown status %q", ErrInvalidListOptions, pgtext.Clean(v, 32))
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return ListOptions{}, fmt.Errorf("%w: limit must be a positive integer", ErrInvalidListOptions)
			}
			opts.Limit = min(n, MaxPageSize)
		case "cursor":
			opts.Cursor = v
		default:
			return ListOptions{}, fmt.Errorf("%w: unknown parameter %q", errBadRequest, pgtext.Clean(name, 32))
		}
	}
	if _, _, err := opts.normalize(); err != nil {
		return ListOptions{}, err
	}
	return opts, nil
}

// writeError maps an error to its problem+json answer.
func (h *AdminHandler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		_ = problem.Write(w, problem.Details{
			Type: ProblemAlreadyDecided, Status: http.StatusConflict, Detail: "the request was already " + string(conflict.Recorded.Status) + "; the first decision stands",
			Extensions: map[string]any{"decision": conflict.Recorded},
		})
	case errors.Is(err, ErrExpired):
		_ = problem.Write(w, problem.Details{
			Type: ProblemExpired, Status: http.StatusConflict, Detail: "the request expired before a decision",
			Extensions: map[string]any{"request_status": StatusExpired},
		})
	case errors.Is(err, ErrSelfApproval):
		_ = problem.Write(w, problem.Details{
			Type: ProblemSelfApproval, Status: http.StatusForbidden, Detail: "a requester cannot approve their own request",
		})
	case errors.Is(err, ErrNotFound):
		problem.Status(w, http.StatusNotFound, "no such approval request")
	case errors.Is(err, errBadRequest), errors.Is(err, ErrInvalidID), errors.Is(err, ErrInvalidDecision),
		errors.Is(err, ErrInvalidListOptions):
		problem.Status(w, http.StatusBadRequest, err.Error())
	default:
		h.cfg.Logger.ErrorContext(r.Context(), "approvals: admin request failed",
			slog.String("path", r.URL.Path), slog.Any("error", err))
		problem.Status(w, http.StatusInternalServerError, "the request could not be completed")
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		problem.Status(w, http.StatusInternalServerError, "the response could not be encoded")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}
