package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// mountAdminDLQ registers the dead-letter administration of the four
// queues, for a tenant's admins (others get 403). Every call is scoped to
// the caller's tenant: the dlq client runs on the app role with the
// tenant in the context, so row-level security and the client's own scope
// both keep one tenant's jobs from another's admin.
//
//	GET  /admin/dlq/stats                     depth, running, retrying, dead, oldest age per queue
//	GET  /admin/dlq/dead?queue=&limit=&before= dead jobs, newest first, with payload, attempts, errors
//	POST /admin/dlq/jobs/{id}/redrive         re-drive one dead job
//	POST /admin/dlq/queues/{queue}/redrive    re-drive every dead job of a queue
func (srv *Server) mountAdminDLQ(mux *http.ServeMux, svc *services) {
	log := srv.cfg.Logger
	admin := func(h http.HandlerFunc) http.Handler {
		return svc.auth.Handler(svc.limiter.Handler(requireAdminScope(log, "the dead-letter queues", h)))
	}
	jobs, err := dlq.NewClient(srv.db.app, dlq.Config{KnownQueues: Queues, Logger: log})
	must(err)
	a := &dlqAdmin{jobs: jobs, db: srv.db.app, log: srv.cfg.Logger}
	mux.Handle("GET /admin/dlq/stats", admin(a.stats))
	mux.Handle("GET /admin/dlq/dead", admin(a.dead))
	mux.Handle("POST /admin/dlq/jobs/{id}/redrive", admin(a.redriveJob))
	mux.Handle("POST /admin/dlq/queues/{queue}/redrive", admin(a.redriveQueue))
}

type dlqAdmin struct {
	jobs *dlq.Client
	db   httpx.DB
	log  *slog.Logger
}

// QueueDepth is one queue in GET /admin/dlq/stats: dlq.QueueStats and
// the depth, every job waiting to run (available now, scheduled or
// waiting for a retry).
type QueueDepth struct {
	dlq.QueueStats
	Depth int64 `json:"depth"`
}

func (a *dlqAdmin) stats(w http.ResponseWriter, r *http.Request) {
	stats, err := a.jobs.Stats(r.Context())
	if err != nil {
		httpx.Fail(w, r, a.log, err)
		return
	}
	out := make([]QueueDepth, 0, len(stats))
	for _, s := range stats {
		out = append(out, QueueDepth{QueueStats: s, Depth: s.Available + s.Scheduled + s.Retrying})
	}
	// The four queues first, in their order; any other after them.
	rank := func(q string) int {
		if i := slices.Index(Queues, q); i >= 0 {
			return i
		}
		return len(Queues)
	}
	slices.SortStableFunc(out, func(x, y QueueDepth) int { return rank(x.Queue) - rank(y.Queue) })
	httpx.JSON(w, http.StatusOK, map[string]any{"queues": out})
}

// DeadJob is a dead job as GET /admin/dlq/dead shows it.
type DeadJob struct {
	ID          int64              `json:"id"`
	Queue       string             `json:"queue"`
	Kind        string             `json:"kind"`
	Payload     json.RawMessage    `json:"payload"`
	Attempts    int                `json:"attempts"`
	MaxAttempts int                `json:"max_attempts"`
	Errors      []dlq.AttemptError `json:"errors"`
	CreatedAt   time.Time          `json:"created_at"`
	DeadAt      *time.Time         `json:"dead_at"`
}

const maxDeadPage = 200

func (a *dlqAdmin) dead(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusBadRequest, "malformed query string"))
		return
	}
	for name := range q {
		if name != "queue" && name != "limit" && name != "before" {
			httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusBadRequest, "unknown query parameter %q", name))
			return
		}
	}
	queue := q.Get("queue")
	if queue != "" && !slices.Contains(Queues, queue) {
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusBadRequest, "queue must be one of webhooks, outbound, followups, scoring"))
		return
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxDeadPage {
			httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusBadRequest, "limit must be a whole number from 1 to %d", maxDeadPage))
			return
		}
	}
	var before *int64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusBadRequest, "before must be a job id"))
			return
		}
		before = &n
	}
	items := []DeadJob{}
	err = httpx.InTx(r, a.db, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, queue, kind, payload, attempt, max_attempts, errors, created_at, finalized_at
			FROM platform.dlq_jobs
			WHERE tenant_id = $4 AND state = 'dead' AND ($1 = '' OR queue = $1) AND ($2::bigint IS NULL OR id < $2)
			ORDER BY id DESC LIMIT $3`, queue, before, limit, httpx.TenantOf(ctx))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j DeadJob
			var history []byte
			if err := rows.Scan(&j.ID, &j.Queue, &j.Kind, &j.Payload, &j.Attempts, &j.MaxAttempts, &history, &j.CreatedAt, &j.DeadAt); err != nil {
				return err
			}
			if err := json.Unmarshal(history, &j.Errors); err != nil {
				return err
			}
			items = append(items, j)
		}
		return rows.Err()
	})
	if err != nil {
		httpx.Fail(w, r, a.log, err)
		return
	}
	out := map[string]any{"items": items}
	if len(items) == limit {
		out["next_before"] = items[len(items)-1].ID
	}
	httpx.JSON(w, http.StatusOK, out)
}

func (a *dlqAdmin) redriveJob(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusNotFound, "no such job"))
		return
	}
	if _, ok := tenancy.TenantFrom(r.Context()); !ok {
		// Without a tenant the client would act on every tenant's jobs.
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant"))
		return
	}
	err = a.jobs.Redrive(r.Context(), id)
	switch {
	case errors.Is(err, dlq.ErrJobNotFound):
		// Another tenant's job is not found either: the same answer.
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusNotFound, "no such job"))
	case errors.Is(err, dlq.ErrNotDead):
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusConflict, "job %d is not dead", id))
	case err != nil:
		httpx.Fail(w, r, a.log, err)
	default:
		httpx.JSON(w, http.StatusOK, map[string]any{"redriven": 1})
	}
}

func (a *dlqAdmin) redriveQueue(w http.ResponseWriter, r *http.Request) {
	queue := r.PathValue("queue")
	if !slices.Contains(Queues, queue) {
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusNotFound, "no such queue"))
		return
	}
	if _, ok := tenancy.TenantFrom(r.Context()); !ok {
		httpx.Fail(w, r, a.log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant"))
		return
	}
	n, err := a.jobs.RedriveWhere(r.Context(), dlq.Filter{Queue: queue})
	if err != nil {
		httpx.Fail(w, r, a.log, err)
		return
	}
	httpx.JSON(w, http.StatusOK, map[string]any{"redriven": n})
}
