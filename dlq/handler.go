package dlq

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/problem"
)

// maxActionBody bounds the body of a POST to the handler.
const maxActionBody = 64 << 10

// StatsResponse is the body of a GET to the handler.
type StatsResponse struct {
	Queues []QueueStats `json:"queues"`
}

// Action is the body of a POST to the handler. Exactly one of JobID and
// Filter is set:
//
//	{"action": "redrive", "job_id": 42}                 one dead job
//	{"action": "redrive", "filter": {"queue": "webhooks"}} every dead job of a queue
//	{"action": "discard", "job_id": 42}                 one dead job given up on
//	{"action": "purge",   "filter": {"kind": "email", "error_contains": "410"}}
type Action struct {
	// Action is "redrive" (the default), "discard" (job_id only) or
	// "purge" (filter only).
	Action string `json:"action,omitempty"`
	// JobID names one dead job.
	JobID int64 `json:"job_id,omitempty"`
	// Filter selects dead jobs; {} selects them all.
	Filter *Filter `json:"filter,omitempty"`
}

// ActionResult is the body of a successful POST.
type ActionResult struct {
	Action   string `json:"action"`
	Affected int64  `json:"affected"`
}

// StatsHandler serves the client's queue stats and dead-letter actions, for an
// operator's admin endpoint (the reference server mounts it at
// /admin/dlq/stats behind its admin authentication):
//
//   - GET answers StatsResponse as JSON.
//   - POST takes an Action as JSON and answers ActionResult.
//
// Errors are RFC 9457 problem+json: 400 for a malformed action, 404 for an
// unknown job, 409 for a job that is not dead, 405 and 415 for the wrong
// method or content type, 500 only for a database failure. The client
// should use the system role so that it sees every tenant; a request whose
// context carries a tenant (a tenant's own admin page behind the
// authentication middleware) sees and acts on that tenant's jobs only.
func (c *Client) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			c.serveStats(w, r)
		case http.MethodPost:
			c.serveAction(w, r)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			problem.Status(w, http.StatusMethodNotAllowed, "use GET for stats or POST for an action")
		}
	})
}

func (c *Client) serveStats(w http.ResponseWriter, r *http.Request) {
	stats, err := c.Stats(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	writeJSON(w, StatsResponse{Queues: stats})
}

func (c *Client) serveAction(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		problem.Status(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	action, err := DecodeAction(http.MaxBytesReader(w, r.Body, maxActionBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			problem.Status(w, http.StatusRequestEntityTooLarge, "the body exceeds 64 KiB")
			return
		}
		problem.Status(w, http.StatusBadRequest, err.Error())
		return
	}
	n, err := c.apply(r, action)
	switch {
	case errors.Is(err, ErrJobNotFound):
		problem.Status(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNotDead):
		problem.Status(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrInvalidFilter):
		problem.Status(w, http.StatusBadRequest, err.Error())
	case err != nil:
		c.serverError(w, r, err)
	default:
		writeJSON(w, ActionResult{Action: action.Action, Affected: n})
	}
}

func (c *Client) apply(r *http.Request, a Action) (int64, error) {
	ctx := r.Context()
	switch {
	case a.Action == "redrive" && a.Filter == nil:
		return 1, c.Redrive(ctx, a.JobID)
	case a.Action == "redrive":
		return c.RedriveWhere(ctx, *a.Filter)
	case a.Action == "discard":
		return 1, c.DiscardJob(ctx, a.JobID)
	default: // purge, checked by DecodeAction
		return c.Purge(ctx, *a.Filter)
	}
}

// DecodeAction parses and checks the body of a POST to the handler: one
// JSON object, no unknown fields, a known action, exactly one of job_id
// (positive) and filter, as the action allows. Its errors wrap
// ErrInvalidAction (or are the reader's own).
func DecodeAction(body io.Reader) (Action, error) {
	var a Action
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return a, err
		}
		return a, fmt.Errorf("%w: %v", ErrInvalidAction, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return a, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidAction)
	}
	if a.Action == "" {
		a.Action = "redrive"
	}
	hasID, hasFilter := a.JobID != 0, a.Filter != nil
	switch {
	case a.Action != "redrive" && a.Action != "discard" && a.Action != "purge":
		return a, fmt.Errorf("%w: action %q is not redrive, discard or purge", ErrInvalidAction, pgtext.Clean(a.Action, 64))
	case a.JobID < 0:
		return a, fmt.Errorf("%w: job_id must be positive", ErrInvalidAction)
	case hasID == hasFilter:
		return a, fmt.Errorf("%w: give exactly one of job_id and filter", ErrInvalidAction)
	case a.Action == "discard" && !hasID:
		return a, fmt.Errorf("%w: discard takes a job_id", ErrInvalidAction)
	case a.Action == "purge" && !hasFilter:
		return a, fmt.Errorf("%w: purge takes a filter", ErrInvalidAction)
	}
	if hasFilter {
		if err := a.Filter.validate(); err != nil {
			return a, fmt.Errorf("%w: %v", ErrInvalidAction, err)
		}
	}
	return a, nil
}

func (c *Client) serverError(w http.ResponseWriter, r *http.Request, err error) {
	c.cfg.Logger.ErrorContext(r.Context(), "dlq: admin request failed", slog.String("err", err.Error()))
	problem.Status(w, http.StatusInternalServerError, "the job store failed; see the server log")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
