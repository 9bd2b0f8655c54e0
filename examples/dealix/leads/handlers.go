package leads

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// Paging limits of the list.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Handlers serves the leads endpoints.
type Handlers struct {
	// DB is the app role's pool (bound by row-level security).
	DB httpx.DB
	// MaxBodyBytes bounds a request body. Default: httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures.
	Log *slog.Logger
	// OnCreated, when set, runs inside the transaction that creates a lead,
	// after the insert: what it writes (an enqueued job, say) commits with
	// the lead or not at all, and its error fails the request.
	OnCreated func(ctx context.Context, tx pgx.Tx, lead Lead) error
}

const columns = `id::text, name, email, company, owner, source, notes, status, version, created_at, updated_at`

func scanLead(row pgx.Row) (Lead, error) {
	var l Lead
	err := row.Scan(&l.ID, &l.Name, &l.Email, &l.Company, &l.Owner, &l.Source, &l.Notes, &l.Status, &l.Version, &l.CreatedAt, &l.UpdatedAt)
	return l, err
}

func notFound() error { return httpx.Errorf(http.StatusNotFound, "no such lead") }

// Create handles POST /api/v1/leads.
func (h *Handlers) Create(w http.ResponseWriter, r *http.Request) {
	var in createInput
	if err := httpx.Decode(w, r, h.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if err := in.validate(); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	tenant, ok := tenancy.TenantFrom(r.Context())
	if !ok {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant"))
		return
	}
	var lead Lead
	err := httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		lead, err = scanLead(tx.QueryRow(ctx, `INSERT INTO dealix.leads
			(tenant_id, name, email, company, owner, source, notes, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING `+columns,
			tenant, in.Name, in.Email, in.Company, in.Owner, in.Source, in.Notes, *in.Status))
		if err != nil || h.OnCreated == nil {
			return err
		}
		return h.OnCreated(ctx, tx, lead)
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/leads/"+lead.ID)
	w.Header().Set("ETag", lead.ETag())
	httpx.JSON(w, http.StatusCreated, lead)
}

// Get handles GET /api/v1/leads/{id}.
func (h *Handlers) Get(w http.ResponseWriter, r *http.Request) {
	id, err := httpx.PathID(r, notFound())
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	var lead Lead
	err = httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		lead, err = scanLead(tx.QueryRow(ctx, `SELECT `+columns+` FROM dealix.leads WHERE tenant_id = $1 AND id = $2`, httpx.TenantOf(ctx), id))
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound()
		}
		return err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("ETag", lead.ETag())
	httpx.JSON(w, http.StatusOK, lead)
}

// Update handles PATCH /api/v1/leads/{id}: a JSON merge patch applied only
// when If-Match names the lead's current ETag (or is "*"). Without
// If-Match the answer is 428, with a stale one 412: a client never
// overwrites a change it has not seen.
func (h *Handlers) Update(w http.ResponseWriter, r *http.Request) {
	id, err := httpx.PathID(r, notFound())
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	want, anyVersion, err := parseIfMatch(r.Header.Values("If-Match"))
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	var in patchInput
	if err := httpx.Decode(w, r, h.MaxBodyBytes, &in, "application/merge-patch+json", "application/json"); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	cols, vals, err := in.changes()
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	set := make([]string, len(cols))
	args := []any{id, nil} // $2: the tenant, set in the transaction
	for i, col := range cols {
		args = append(args, vals[i])
		set[i] = col + " = $" + strconv.Itoa(len(args)) // col comes from a fixed list
	}
	var lead Lead
	err = httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		var current int
		args[1] = httpx.TenantOf(ctx)
		// Lock the row, so the version compared is the version replaced.
		err := tx.QueryRow(ctx, `SELECT version FROM dealix.leads WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, args[1], id).Scan(&current)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound()
		}
		if err != nil {
			return err
		}
		if !anyVersion && !matches(want, current) {
			return &httpx.Error{
				Status:     http.StatusPreconditionFailed,
				Detail:     "the lead has changed since the version named in If-Match; fetch it again",
				Extensions: map[string]any{"current_etag": Lead{Version: current}.ETag()},
			}
		}
		lead, err = scanLead(tx.QueryRow(ctx, `UPDATE dealix.leads SET `+strings.Join(set, ", ")+
			`, version = version + 1, updated_at = now() WHERE tenant_id = $2 AND id = $1 RETURNING `+columns, args...))
		return err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("ETag", lead.ETag())
	httpx.JSON(w, http.StatusOK, lead)
}

// parseIfMatch reads the If-Match entity tags (RFC 9110 section 13.1.1).
// Weak tags never match under its strong comparison, so they are ignored.
func parseIfMatch(values []string) (versions []int, anyVersion bool, err error) {
	if len(values) == 0 {
		return nil, false, httpx.Errorf(http.StatusPreconditionRequired, "updating a lead requires If-Match with the ETag of the version you read")
	}
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			switch {
			case tag == "*":
				anyVersion = true
			case strings.HasPrefix(tag, `W/`):
			case strings.HasPrefix(tag, `"v`) && strings.HasSuffix(tag, `"`) && len(tag) > 3:
				n, err := strconv.Atoi(tag[2 : len(tag)-1])
				if err == nil && n > 0 {
					versions = append(versions, n)
				}
			case strings.HasPrefix(tag, `"`) && strings.HasSuffix(tag, `"`) && len(tag) >= 2:
				// Another server's tag: it matches no version of ours.
			default:
				return nil, false, httpx.Errorf(http.StatusBadRequest, "malformed If-Match header")
			}
		}
	}
	return versions, anyVersion, nil
}

func matches(versions []int, current int) bool {
	for _, v := range versions {
		if v == current {
			return true
		}
	}
	return false
}

// Page is one page of the list.
type Page struct {
	Items      []Lead `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

type listQuery struct {
	status, owner *string
	after, before *time.Time
	cursorAt      *time.Time
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
		case "status", "owner", "created_after", "created_before", "cursor", "limit":
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
	for name, dst := range map[string]**time.Time{"created_after": &lq.after, "created_before": &lq.before} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return lq, httpx.Errorf(http.StatusBadRequest, "%s must be an RFC 3339 time, such as 2026-01-31T09:00:00Z", name)
			}
			*dst = &t
		}
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
		lq.cursorAt, lq.cursorID = &c.CreatedAt, &c.ID
	}
	return lq, nil
}

// List handles GET /api/v1/leads: newest first, filtered by status, owner
// and a created_at range (created_after exclusive, created_before
// exclusive), paged by an opaque cursor.
func (h *Handlers) List(w http.ResponseWriter, r *http.Request) {
	lq, err := parseList(r)
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	page := Page{Items: []Lead{}}
	err = httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+columns+` FROM dealix.leads
			WHERE tenant_id = $8
			  AND ($1::text IS NULL OR status = $1)
			  AND ($2::text IS NULL OR owner = $2)
			  AND ($3::timestamptz IS NULL OR created_at > $3)
			  AND ($4::timestamptz IS NULL OR created_at < $4)
			  AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6::uuid))
			ORDER BY created_at DESC, id DESC
			LIMIT $7`, lq.status, lq.owner, lq.after, lq.before, lq.cursorAt, lq.cursorID, lq.limit+1, httpx.TenantOf(ctx))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			l, err := scanLead(rows)
			if err != nil {
				return err
			}
			page.Items = append(page.Items, l)
		}
		return rows.Err()
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if len(page.Items) > lq.limit {
		page.Items = page.Items[:lq.limit]
		last := page.Items[len(page.Items)-1]
		page.NextCursor = httpx.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}.Encode()
	}
	httpx.JSON(w, http.StatusOK, page)
}
