package deals

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Runs serves the operators' view of the tenant's durable runs (every
// workflow, not only deal-closed): /admin/runs. Every call takes the
// tenant from the request's context, so an admin sees and cancels only
// their own tenant's runs; another tenant's run is a 404 like a missing
// one. Mount it behind authentication and an admin check.
type Runs struct {
	// Runtime is the durable runtime whose runs are shown. Required.
	Runtime *durable.Runtime
	// MaxBodyBytes bounds a request body. Default:
	// httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures.
	Log *slog.Logger
}

// RunView is a run as the admin API shows it.
type RunView struct {
	ID         string          `json:"id"`
	Workflow   string          `json:"workflow"`
	Status     string          `json:"status"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	Attempt    int64           `json:"attempt"`
	Owner      string          `json:"owner,omitempty"`
	WakeAt     *time.Time      `json:"wake_at,omitempty"`
	WaitingFor string          `json:"waiting_for,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	// Steps are the run's checkpoints, in order; only GET of one run
	// reads them.
	Steps []StepView `json:"steps,omitempty"`
}

// StepView is one checkpoint of a run.
type StepView struct {
	Seq       int             `json:"seq"`
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	Output    json.RawMessage `json:"output,omitempty"`
	Error     string          `json:"error,omitempty"`
	Attempts  int             `json:"attempts"`
	CreatedAt time.Time       `json:"created_at"`
}

// RunPage is one page of the list.
type RunPage struct {
	Items      []RunView `json:"items"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func viewRun(r durable.Run) RunView {
	v := RunView{ID: r.ID, Workflow: r.Workflow, Status: string(r.Status), Input: r.Input, Output: r.Output,
		Error: r.Error, Attempt: r.Attempt, Owner: r.Owner, WaitingFor: r.WaitingFor,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if !r.WakeAt.IsZero() {
		v.WakeAt = &r.WakeAt
	}
	if !r.FinishedAt.IsZero() {
		v.FinishedAt = &r.FinishedAt
	}
	return v
}

// runError maps the runtime's errors to answers; anything else is a 500.
func runError(err error) error {
	switch {
	case errors.Is(err, durable.ErrRunNotFound), errors.Is(err, durable.ErrInvalidRunID):
		return httpx.Errorf(http.StatusNotFound, "no such run")
	case errors.Is(err, durable.ErrRunFinished):
		return httpx.Errorf(http.StatusConflict, "the run has already finished")
	case errors.Is(err, durable.ErrInvalidCursor):
		return httpx.Errorf(http.StatusBadRequest, "malformed cursor")
	}
	return err
}

var allStatuses = []durable.Status{durable.StatusPending, durable.StatusRunning, durable.StatusSleeping,
	durable.StatusWaiting, durable.StatusCompleted, durable.StatusFailed, durable.StatusCancelled}

// parseStatuses reads the status filter: a comma-separated list of
// statuses, "incomplete" (the default) or "all".
func parseStatuses(v string) ([]durable.Status, error) {
	switch v {
	case "", "incomplete":
		return durable.DefaultIncomplete, nil
	case "all":
		return allStatuses, nil
	}
	var out []durable.Status
	for _, s := range strings.Split(v, ",") {
		st := durable.Status(strings.TrimSpace(s))
		known := false
		for _, k := range allStatuses {
			known = known || k == st
		}
		if !known {
			return nil, httpx.Errorf(http.StatusBadRequest,
				"status must be incomplete, all, or a comma-separated list of pending, running, sleeping, waiting, completed, failed, cancelled")
		}
		out = append(out, st)
	}
	return out, nil
}

// List handles GET /admin/runs: the tenant's runs, oldest first; by
// default the incomplete ones. Query: status (incomplete, all, or a
// comma-separated list), workflow, limit (1 to 1000, default 50), cursor
// (next_cursor of the previous page).
func (h *Runs) List(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "malformed query string"))
		return
	}
	for name := range q {
		switch name {
		case "status", "workflow", "limit", "cursor":
		default:
			httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "unknown query parameter %q", name))
			return
		}
		if len(q[name]) > 1 {
			httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "query parameter %q is repeated", name))
			return
		}
	}
	opts := durable.ListOptions{Workflow: q.Get("workflow"), After: q.Get("cursor")}
	if opts.Statuses, err = parseStatuses(q.Get("status")); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "limit must be a whole number from 1 to 1000"))
			return
		}
		opts.Limit = n
	}
	page, err := h.Runtime.List(r.Context(), opts)
	if err != nil {
		httpx.Fail(w, r, h.Log, runError(err))
		return
	}
	out := RunPage{Items: make([]RunView, 0, len(page.Runs)), NextCursor: page.Next}
	for _, run := range page.Runs {
		out.Items = append(out.Items, viewRun(run))
	}
	httpx.JSON(w, http.StatusOK, out)
}

// Get handles GET /admin/runs/{id}: the run with its steps.
func (h *Runs) Get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := h.Runtime.Get(r.Context(), id)
	if err != nil {
		httpx.Fail(w, r, h.Log, runError(err))
		return
	}
	steps, err := h.Runtime.Steps(r.Context(), id)
	if err != nil {
		httpx.Fail(w, r, h.Log, runError(err))
		return
	}
	v := viewRun(run)
	v.Steps = make([]StepView, 0, len(steps))
	for _, s := range steps {
		v.Steps = append(v.Steps, StepView{Seq: s.Seq, Kind: s.Kind, Name: s.Name, Status: s.Status,
			Output: s.Output, Error: s.Error, Attempts: s.Attempts, CreatedAt: s.CreatedAt})
	}
	httpx.JSON(w, http.StatusOK, v)
}

// Cancel handles POST /admin/runs/{id}/cancel, with an optional body
// {"reason": "..."}: the run stops at its next checkpoint and is never
// resumed by a worker; the steps it recorded stay. The answer is the
// cancelled run. Cancelling a finished run (a second cancel included) is
// 409, so the call needs no idempotency key: it never acts twice.
func (h *Runs) Cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var in struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
		if err := httpx.Decode(w, r, h.MaxBodyBytes, &in); err != nil {
			httpx.Fail(w, r, h.Log, err)
			return
		}
		if err := httpx.CheckText("reason", in.Reason, limits["reason"]); err != nil {
			httpx.Fail(w, r, h.Log, err)
			return
		}
	}
	if in.Reason == "" {
		in.Reason = "cancelled by an operator"
	}
	if err := h.Runtime.Cancel(r.Context(), id, in.Reason); err != nil {
		httpx.Fail(w, r, h.Log, runError(err))
		return
	}
	run, err := h.Runtime.Get(r.Context(), id)
	if err != nil {
		httpx.Fail(w, r, h.Log, runError(err))
		return
	}
	httpx.JSON(w, http.StatusOK, viewRun(run))
}
