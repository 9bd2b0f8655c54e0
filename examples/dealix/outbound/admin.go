package outbound

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/problem"
	"github.com/dealix/platform/tenancy"
)

// listOrder is the order of the admin list without a status filter:
// what waits for a decision first, then what was decided, each newest
// first.
var listOrder = []approvals.Status{approvals.StatusPending, approvals.StatusApproved, approvals.StatusRejected, approvals.StatusExpired}

// ApprovalsAdmin serves the admin's side of the approvals gate, on the
// approvals service, for the tenant of the request (the admin's own):
//
//	GET  /admin/approvals?status=&limit=&cursor=  list, pending first
//	GET  /admin/approvals/{id}                    one request
//	POST /admin/approvals/{id}/approve            {"comment": "…"} (optional body)
//	POST /admin/approvals/{id}/reject             {"comment": "…"} (optional body)
//	GET  /admin/approvals/{id}/audit              every attempt to decide it
//
// Mount it behind authentication and an admin check. Another tenant's
// request is 404, as a missing one. The first decision wins: the other
// decision afterwards is 409 (problem type approvals.ProblemAlreadyDecided,
// the recorded decision in "decision"), an expired request is 409
// (approvals.ProblemExpired), and approving one's own request is 403
// (approvals.ProblemSelfApproval).
type ApprovalsAdmin struct {
	// Approvals is the gate.
	Approvals *approvals.Service
	// MaxBodyBytes bounds a decision's body. Default: httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures.
	Log *slog.Logger
}

// ApprovalsPage is one page of the admin list.
type ApprovalsPage struct {
	Items      []approvals.Request `json:"items"`
	NextCursor string              `json:"next_cursor,omitempty"`
}

// listCursor continues the list in one status's pages.
type listCursor struct {
	Status approvals.Status `json:"s"`
	Inner  string           `json:"c,omitempty"`
}

func (c listCursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// List handles GET /admin/approvals.
func (h *ApprovalsAdmin) List(w http.ResponseWriter, r *http.Request) {
	order, limit, at, err := parseApprovalsQuery(r.URL.RawQuery)
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	page := ApprovalsPage{Items: []approvals.Request{}}
	for i := slices.Index(order, at.Status); i < len(order) && len(page.Items) < limit; i++ {
		inner := ""
		if order[i] == at.Status {
			inner = at.Inner
		}
		p, err := h.Approvals.List(r.Context(), approvals.ListOptions{Status: order[i], Limit: limit - len(page.Items), Cursor: inner})
		if errors.Is(err, approvals.ErrInvalidListOptions) {
			err = httpx.Errorf(http.StatusBadRequest, "malformed cursor")
		}
		if err != nil {
			httpx.Fail(w, r, h.Log, err)
			return
		}
		page.Items = append(page.Items, p.Requests...)
		switch {
		case p.Next != "":
			page.NextCursor = listCursor{Status: order[i], Inner: p.Next}.encode()
		case len(page.Items) >= limit && i+1 < len(order):
			page.NextCursor = listCursor{Status: order[i+1]}.encode()
		}
	}
	httpx.JSON(w, http.StatusOK, page)
}

// parseApprovalsQuery reads status, limit and cursor, each at most once;
// any other parameter is refused, so a typo does not list everything.
func parseApprovalsQuery(raw string) (order []approvals.Status, limit int, at listCursor, err error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "malformed query string")
	}
	for name := range q {
		switch name {
		case "status", "limit", "cursor":
		default:
			return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "unknown query parameter %q", name)
		}
		if len(q[name]) > 1 {
			return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "query parameter %q is repeated", name)
		}
	}
	order, limit = listOrder, approvals.DefaultPageSize
	if v := q.Get("status"); v != "" {
		if !approvals.Status(v).Valid() {
			return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "status must be pending, approved, rejected or expired")
		}
		order = []approvals.Status{approvals.Status(v)}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > approvals.MaxPageSize {
			return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "limit must be a whole number from 1 to %d", approvals.MaxPageSize)
		}
	}
	at = listCursor{Status: order[0]}
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			err = json.Unmarshal(b, &at)
		}
		// A cursor continues the list it came from: its status must be
		// one this list walks.
		if err != nil || !slices.Contains(order, at.Status) {
			return nil, 0, at, httpx.Errorf(http.StatusBadRequest, "malformed cursor")
		}
	}
	return order, limit, at, nil
}

// Get handles GET /admin/approvals/{id}.
func (h *ApprovalsAdmin) Get(w http.ResponseWriter, r *http.Request) {
	req, err := h.Approvals.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, req)
}

// Audit handles GET /admin/approvals/{id}/audit: every attempt to decide
// the request, oldest first.
func (h *ApprovalsAdmin) Audit(w http.ResponseWriter, r *http.Request) {
	entries, err := h.Approvals.AuditTrail(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if entries == nil {
		entries = []approvals.AuditEntry{}
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"items": entries})
}

// Approve handles POST /admin/approvals/{id}/approve.
func (h *ApprovalsAdmin) Approve(w http.ResponseWriter, r *http.Request) {
	h.decide(w, r, approvals.StatusApproved)
}

// Reject handles POST /admin/approvals/{id}/reject.
func (h *ApprovalsAdmin) Reject(w http.ResponseWriter, r *http.Request) {
	h.decide(w, r, approvals.StatusRejected)
}

type decisionInput struct {
	Comment string `json:"comment"`
}

func (h *ApprovalsAdmin) decide(w http.ResponseWriter, r *http.Request, decision approvals.Status) {
	var in decisionInput
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		if err := httpx.Decode(w, r, h.MaxBodyBytes, &in); err != nil {
			httpx.Fail(w, r, h.Log, err)
			return
		}
	}
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok || p.Subject == "" {
		// A decider who cannot be named cannot be audited.
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusForbidden, "the credential names no subject to record as the decider"))
		return
	}
	d, err := h.Approvals.Decide(r.Context(), approvals.DecideInput{
		RequestID: r.PathValue("id"), Decision: decision, Decider: p.Subject, Comment: in.Comment,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.JSON(w, http.StatusOK, d)
}

// fail maps the approvals service's errors to their problems.
func (h *ApprovalsAdmin) fail(w http.ResponseWriter, r *http.Request, err error) {
	var conflict *approvals.ConflictError
	switch {
	case errors.As(err, &conflict):
		_ = problem.Write(w, problem.Details{
			Type: approvals.ProblemAlreadyDecided, Status: http.StatusConflict,
			Detail:     "already decided: the request was " + string(conflict.Recorded.Status) + " first, and the first decision stands",
			Extensions: map[string]any{"decision": conflict.Recorded},
		})
	case errors.Is(err, approvals.ErrExpired):
		_ = problem.Write(w, problem.Details{
			Type: approvals.ProblemExpired, Status: http.StatusConflict, Detail: "the request expired before a decision",
		})
	case errors.Is(err, approvals.ErrSelfApproval):
		_ = problem.Write(w, problem.Details{
			Type: approvals.ProblemSelfApproval, Status: http.StatusForbidden, Detail: "a requester cannot approve their own request",
		})
	case errors.Is(err, approvals.ErrNotFound), errors.Is(err, approvals.ErrInvalidID):
		// A malformed id names no request: the same answer as a missing
		// one or another tenant's.
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusNotFound, "no such approval request"))
	case errors.Is(err, approvals.ErrInvalidDecision):
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "comment must be at most %d bytes without NUL", approvals.MaxCommentLength))
	default:
		httpx.Fail(w, r, h.Log, err)
	}
}
