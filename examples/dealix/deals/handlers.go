package deals

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace"

	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/telemetry"
	"github.com/dealix/platform/tenancy"
)

// Paging limits of the list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

const dealColumns = `d.id::text, d.lead_id::text, d.title, d.amount, d.currency, d.owner, d.status, d.lost_reason,
	d.closed_at, d.closed_by, d.run_id, d.created_at, d.updated_at`

// withEvidence selects a deal with its evidence, when there is one.
const withEvidence = `SELECT ` + dealColumns + `,
	e.id::text, e.run_id, e.outcome, e.reason, e.closed_by, e.closed_at, e.amount, e.currency,
	e.correlation_id, e.trace_id, e.recorded_at
FROM dealix.deals d
LEFT JOIN dealix.deal_evidence e ON e.tenant_id = d.tenant_id AND e.deal_id = d.id`

func scanDeal(row pgx.Row, evidence bool) (Deal, error) {
	var d Deal
	dest := []any{&d.ID, &d.LeadID, &d.Title, &d.Amount, &d.Currency, &d.Owner, &d.Status, &d.LostReason,
		&d.ClosedAt, &d.ClosedBy, &d.RunID, &d.CreatedAt, &d.UpdatedAt}
	var e struct {
		id, runID, outcome, closedBy, currency, correlation, trace *string
		reason                                                     *string
		amount                                                     *int64
		closedAt, recordedAt                                       *time.Time
	}
	if evidence {
		dest = append(dest, &e.id, &e.runID, &e.outcome, &e.reason, &e.closedBy, &e.closedAt, &e.amount, &e.currency,
			&e.correlation, &e.trace, &e.recordedAt)
	}
	if err := row.Scan(dest...); err != nil {
		return d, err
	}
	if e.id != nil {
		d.Evidence = &Evidence{ID: *e.id, RunID: *e.runID, Outcome: *e.outcome, Reason: e.reason,
			ClosedBy: *e.closedBy, ClosedAt: *e.closedAt, Amount: *e.amount, Currency: *e.currency,
			CorrelationID: *e.correlation, TraceID: *e.trace, RecordedAt: *e.recordedAt}
	}
	return d, nil
}

func notFound() error { return httpx.Errorf(http.StatusNotFound, "no such deal") }

// Create handles POST /api/v1/deals.
func (s *Service) Create(w http.ResponseWriter, r *http.Request) {
	var in createInput
	if err := httpx.Decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	if err := in.validate(); err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	tenant, ok := tenancy.TenantFrom(r.Context())
	if !ok {
		httpx.Fail(w, r, s.log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant"))
		return
	}
	var deal Deal
	err := httpx.InTx(r, s.cfg.DB, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		deal, err = scanDeal(tx.QueryRow(ctx, `INSERT INTO dealix.deals AS d
			(tenant_id, lead_id, title, amount, currency, owner)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+dealColumns,
			tenant, in.leadID, in.Title, *in.Amount, in.Currency, in.Owner), false)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation: the lead
			return &httpx.Error{Status: http.StatusUnprocessableEntity, Detail: "lead_id names no lead",
				Extensions: map[string]any{"errors": []map[string]string{{"field": "lead_id", "detail": "names no lead"}}}}
		}
		return err
	})
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/deals/"+deal.ID)
	httpx.JSON(w, http.StatusCreated, deal)
}

// Get handles GET /api/v1/deals/{id}: the deal, its evidence once its run
// wrote it, and the run's status.
func (s *Service) Get(w http.ResponseWriter, r *http.Request) {
	id, err := httpx.PathID(r, notFound())
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	deal, err := s.readDeal(r, id)
	if err == nil && deal.RunID != nil {
		var run durable.Run
		run, err = s.cfg.Runtime.Get(r.Context(), *deal.RunID)
		switch {
		case errors.Is(err, durable.ErrRunNotFound):
			err = nil // swept after its retention: the evidence stays
		case err == nil && run.Status == durable.StatusCompleted && deal.Evidence == nil:
			// The run wrote the evidence before it completed, but after
			// the deal was read: read it again, so a completed run never
			// shows without its evidence.
			deal, err = s.readDeal(r, id)
			deal.RunStatus = string(run.Status)
		case err == nil:
			deal.RunStatus = string(run.Status)
		}
	}
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	httpx.JSON(w, http.StatusOK, deal)
}

// readDeal reads the deal id with its evidence, in a transaction of the
// request's tenant.
func (s *Service) readDeal(r *http.Request, id uuid.UUID) (Deal, error) {
	var deal Deal
	err := httpx.InTx(r, s.cfg.DB, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		deal, err = scanDeal(tx.QueryRow(ctx, withEvidence+` WHERE d.tenant_id = $1 AND d.id = $2`, httpx.TenantOf(ctx), id), true)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound()
		}
		return err
	})
	return deal, err
}

// Close handles POST /api/v1/deals/{id}/close, body {"outcome":"won"} or
// {"outcome":"lost","reason":"..."}. Behind the idempotency middleware in
// transactional mode, one transaction holds the deal's status change, the
// start of its deal-closed run and the stored answer: a crash anywhere
// leaves all three or none. Closing a closed deal is 409.
func (s *Service) Close(w http.ResponseWriter, r *http.Request) {
	id, err := httpx.PathID(r, notFound())
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	var in closeInput
	if err := httpx.Decode(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	if err := in.validate(); err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	p, ok := tenancy.PrincipalFrom(r.Context())
	if !ok || p.Subject == "" {
		httpx.Fail(w, r, s.log, httpx.Errorf(http.StatusForbidden, "closing a deal needs an identified caller"))
		return
	}
	s.crashAt(r.Context(), CrashCloseStart)
	var deal Deal
	err = httpx.InTx(r, s.cfg.DB, func(ctx context.Context, tx pgx.Tx) error {
		var status string
		// Lock the row: of two closes racing on one deal, one closes it
		// and the other then sees it closed.
		err := tx.QueryRow(ctx, `SELECT status FROM dealix.deals WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, httpx.TenantOf(ctx), id).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound()
		}
		if err != nil {
			return err
		}
		if status != "open" {
			return &httpx.Error{Status: http.StatusConflict, Detail: "the deal is already closed as " + status,
				Extensions: map[string]any{"deal_status": status}}
		}
		runID := RunID(id.String())
		deal, err = scanDeal(tx.QueryRow(ctx, `UPDATE dealix.deals AS d
			SET status = $2, lost_reason = $3, closed_at = now(), closed_by = $4, run_id = $5, updated_at = now()
			WHERE tenant_id = $6 AND id = $1 RETURNING `+dealColumns, id, in.Outcome, in.Reason, p.Subject, runID, httpx.TenantOf(ctx)), false)
		if err != nil {
			return err
		}
		_, err = s.closed.StartTx(ctx, tx, ClosedInput{
			DealID: deal.ID, Title: deal.Title, Outcome: in.Outcome, Reason: in.Reason, Owner: deal.Owner,
			ClosedBy: p.Subject, ClosedAt: *deal.ClosedAt, Amount: deal.Amount, Currency: deal.Currency,
			CorrelationID: telemetry.CorrelationID(ctx), TraceID: traceID(ctx),
		}, durable.WithRunID(runID))
		if err != nil {
			return err
		}
		s.crashAt(ctx, CrashCloseInTx)
		return nil
	})
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	httpx.JSON(w, http.StatusOK, deal)
}

// traceID is the request's trace id, or "" when it is not traced.
func traceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		return sc.TraceID().String()
	}
	return ""
}

type listQuery struct {
	status, owner *string
	cursorAt      any
	cursorID      *string
	limit         int
}

func parseList(r *http.Request) (listQuery, error) {
	lq := listQuery{limit: DefaultPageSize}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return lq, httpx.Errorf(http.StatusBadRequest, "malformed query string")
	}
	for name := range q {
		switch name {
		case "status", "owner", "cursor", "limit":
		default:
			return lq, httpx.Errorf(http.StatusBadRequest, "unknown query parameter %q", name)
		}
		if len(q[name]) > 1 {
			return lq, httpx.Errorf(http.StatusBadRequest, "query parameter %q is repeated", name)
		}
	}
	if v := q.Get("status"); v != "" {
		if err := checkStatus(v); err != nil {
			return lq, err
		}
		lq.status = &v
	}
	if v := q.Get("owner"); v != "" {
		if err := httpx.CheckText("owner", v, limits["owner"]); err != nil {
			return lq, err
		}
		lq.owner = &v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			return lq, httpx.Errorf(http.StatusBadRequest, "limit must be a whole number from 1 to %d", MaxPageSize)
		}
		lq.limit = n
	}
	if v := q.Get("cursor"); v != "" {
		c, err := httpx.DecodeCursor(v)
		if err != nil {
			return lq, err
		}
		lq.cursorAt, lq.cursorID = c.CreatedAt, &c.ID
	}
	return lq, nil
}

// List handles GET /api/v1/deals: newest first, filtered by status and
// owner, paged by an opaque cursor (next_cursor).
func (s *Service) List(w http.ResponseWriter, r *http.Request) {
	lq, err := parseList(r)
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	page := Page{Items: []Deal{}}
	err = httpx.InTx(r, s.cfg.DB, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, withEvidence+`
			WHERE d.tenant_id = $6
			  AND ($1::text IS NULL OR d.status = $1)
			  AND ($2::text IS NULL OR d.owner = $2)
			  AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4::uuid))
			ORDER BY d.created_at DESC, d.id DESC
			LIMIT $5`, lq.status, lq.owner, lq.cursorAt, lq.cursorID, lq.limit+1, httpx.TenantOf(ctx))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanDeal(rows, true)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, d)
		}
		return rows.Err()
	})
	if err != nil {
		httpx.Fail(w, r, s.log, err)
		return
	}
	if len(page.Items) > lq.limit {
		page.Items = page.Items[:lq.limit]
		last := page.Items[len(page.Items)-1]
		page.NextCursor = httpx.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
	}
	httpx.JSON(w, http.StatusOK, page)
}
