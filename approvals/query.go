package approvals

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// Paging limits of List.
const (
	// DefaultPageSize is the page size when ListOptions.Limit is zero.
	DefaultPageSize = 50
	// MaxPageSize is the largest page List returns.
	MaxPageSize = 500
	// MaxAuditEntries is the most audit entries AuditTrail returns (the
	// oldest first).
	MaxAuditEntries = 1000
)

// ErrInvalidListOptions is returned by List for an unknown status, a
// negative limit or a malformed cursor.
var ErrInvalidListOptions = errors.New("approvals: invalid list options")

// ListOptions selects a page of requests, newest first.
type ListOptions struct {
	// Status keeps only requests in that status. Default "": all.
	Status Status
	// Limit is the page size. Default DefaultPageSize; values above
	// MaxPageSize are lowered to it; negative is refused.
	Limit int
	// Cursor continues after the page that returned it (Page.Next).
	// Default "": the first page.
	Cursor string
}

// Page is one page of requests.
type Page struct {
	// Requests are newest first; empty, never nil, on an empty page.
	Requests []Request `json:"requests"`
	// Next is the cursor of the following page, "" on the last one.
	Next string `json:"next,omitempty"`
}

// AuditEntry is one row of a request's audit trail.
type AuditEntry struct {
	// ID orders the entries of a tenant.
	ID int64 `json:"id"`
	// RequestID is the request the attempt was on.
	RequestID string `json:"request_id"`
	// Actor is the decider, or SystemActor for an expiry.
	Actor string `json:"actor"`
	// Action is "approve", "reject" or "expire".
	Action string `json:"action"`
	// Result is what came of the attempt.
	Result AuditResult `json:"result"`
	// StatusAfter is the request's status after the attempt.
	StatusAfter Status `json:"status_after,omitempty"`
	// Comment is the decider's comment.
	Comment string `json:"comment,omitempty"`
	// Error is the hook's error when Result is AuditHookFailed, cut to
	// MaxAuditErrorLength bytes.
	Error string `json:"error,omitempty"`
	// RecordedAt is when the attempt was made, on the database's clock.
	RecordedAt time.Time `json:"recorded_at"`
}

// Get returns one request of the tenant of ctx (tenancy.TenantFrom;
// ErrNoTenant without one), or ErrNotFound, which is also the answer for
// another tenant's request.
func (s *Service) Get(ctx context.Context, requestID string) (Request, error) {
	tenant, err := contextTenant(ctx)
	if err != nil {
		return Request{}, err
	}
	return s.get(ctx, tenant, requestID)
}

// GetForTenant is Get for system work that names the tenant explicitly.
// An empty tenant is ErrNoTenant, a malformed one ErrInvalidTenant.
func (s *Service) GetForTenant(ctx context.Context, tenant, requestID string) (Request, error) {
	tenant, err := explicitTenant(tenant)
	if err != nil {
		return Request{}, err
	}
	return s.get(ctx, tenant, requestID)
}

func (s *Service) get(ctx context.Context, tenant, requestID string) (Request, error) {
	id, err := parseRequestID(requestID)
	if err != nil {
		return Request{}, err
	}
	// One round trip: the tenant scope and the read in one implicit
	// transaction.
	rows, err := rls.Query(ctx, s.db, tenant, selectRequestSQL, tenant, id)
	if err != nil {
		return Request{}, fmt.Errorf("approvals: get request: %w", err)
	}
	req, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Request, error) { return scanRequest(row) })
	if errors.Is(err, pgx.ErrNoRows) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("approvals: get request: %w", err)
	}
	return req, nil
}

func getRequest(ctx context.Context, tx pgx.Tx, tenantID, id string) (Request, error) {
	req, err := scanRequest(tx.QueryRow(ctx, selectRequestSQL, tenantID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Request{}, ErrNotFound
	}
	if err != nil {
		return Request{}, fmt.Errorf("approvals: get request: %w", err)
	}
	return req, nil
}

const listSQL = `SELECT ` + requestColumns + `, seq FROM platform.approvals_requests
WHERE tenant_id = $1 AND ($2 = '' OR status = $2) AND seq < $3
ORDER BY seq DESC LIMIT $4`

// List returns a page of the requests of the tenant of ctx
// (tenancy.TenantFrom; ErrNoTenant without one), newest first.
func (s *Service) List(ctx context.Context, opts ListOptions) (Page, error) {
	tenant, err := contextTenant(ctx)
	if err != nil {
		return Page{}, err
	}
	return s.list(ctx, tenant, opts)
}

// ListForTenant is List for system work that names the tenant explicitly.
// An empty tenant is ErrNoTenant, a malformed one ErrInvalidTenant.
func (s *Service) ListForTenant(ctx context.Context, tenant string, opts ListOptions) (Page, error) {
	tenant, err := explicitTenant(tenant)
	if err != nil {
		return Page{}, err
	}
	return s.list(ctx, tenant, opts)
}

func (s *Service) list(ctx context.Context, tenantID string, opts ListOptions) (Page, error) {
	limit, before, err := opts.normalize()
	if err != nil {
		return Page{}, err
	}
	page := Page{Requests: []Request{}}
	err = rls.InTx(ctx, s.db, tenantID, func(tx pgx.Tx) error {
		// One more row than asked tells whether a next page exists.
		rows, err := tx.Query(ctx, listSQL, tenantID, string(opts.Status), before, limit+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		var seqs []int64
		for rows.Next() {
			var seq int64
			req, err := scanRequest(rows, &seq)
			if err != nil {
				return err
			}
			page.Requests = append(page.Requests, req)
			seqs = append(seqs, seq)
		}
		if len(page.Requests) > limit {
			page.Requests = page.Requests[:limit]
			page.Next = strconv.FormatInt(seqs[limit-1], 10)
		}
		return rows.Err()
	})
	if err != nil {
		return Page{}, fmt.Errorf("approvals: list requests: %w", err)
	}
	return page, nil
}

const auditSQL = `SELECT id, request_id::text, actor, action, result, status_after, comment, error, recorded_at
FROM platform.approvals_audit WHERE tenant_id = $1 AND request_id = $2 ORDER BY id LIMIT $3`

// AuditTrail returns every attempt to decide one request of the tenant of
// ctx (tenancy.TenantFrom; ErrNoTenant without one), failed hooks
// included, and its expiry, oldest first, at most MaxAuditEntries. It
// returns ErrNotFound for a request that does not exist in the tenant.
func (s *Service) AuditTrail(ctx context.Context, requestID string) ([]AuditEntry, error) {
	tenant, err := contextTenant(ctx)
	if err != nil {
		return nil, err
	}
	return s.auditTrail(ctx, tenant, requestID)
}

// AuditTrailForTenant is AuditTrail for system work that names the tenant
// explicitly. An empty tenant is ErrNoTenant, a malformed one
// ErrInvalidTenant.
func (s *Service) AuditTrailForTenant(ctx context.Context, tenant, requestID string) ([]AuditEntry, error) {
	tenant, err := explicitTenant(tenant)
	if err != nil {
		return nil, err
	}
	return s.auditTrail(ctx, tenant, requestID)
}

func (s *Service) auditTrail(ctx context.Context, tenantID, requestID string) ([]AuditEntry, error) {
	id, err := parseRequestID(requestID)
	if err != nil {
		return nil, err
	}
	var entries []AuditEntry
	err = rls.InTx(ctx, s.db, tenantID, func(tx pgx.Tx) error {
		if _, err := getRequest(ctx, tx, tenantID, id); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, auditSQL, tenantID, id, MaxAuditEntries)
		if err != nil {
			return fmt.Errorf("approvals: audit trail: %w", err)
		}
		entries, err = pgx.CollectRows(rows, scanAuditEntry)
		return err
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

func scanAuditEntry(row pgx.CollectableRow) (AuditEntry, error) {
	var e AuditEntry
	var result, status string
	err := row.Scan(&e.ID, &e.RequestID, &e.Actor, &e.Action, &result, &status, &e.Comment, &e.Error, &e.RecordedAt)
	e.Result, e.StatusAfter, e.RecordedAt = AuditResult(result), Status(status), e.RecordedAt.UTC()
	return e, err
}

// parseRequestID accepts only the canonical 36-character UUID form.
func parseRequestID(s string) (string, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", ErrInvalidID
	}
	return id.String(), nil
}

// normalize applies the defaults and returns the page size and the
// exclusive upper bound on seq.
func (o ListOptions) normalize() (limit int, before int64, err error) {
	if o.Status != "" && !o.Status.Valid() {
		return 0, 0, fmt.Errorf("%w: unknown status %q", ErrInvalidListOptions, o.Status)
	}
	switch {
	case o.Limit < 0:
		return 0, 0, fmt.Errorf("%w: negative limit", ErrInvalidListOptions)
	case o.Limit == 0:
		limit = DefaultPageSize
	default:
		limit = min(o.Limit, MaxPageSize)
	}
	before = int64(1<<63 - 1)
	if o.Cursor != "" {
		before, err = strconv.ParseInt(o.Cursor, 10, 64)
		if err != nil || before <= 0 || strconv.FormatInt(before, 10) != o.Cursor {
			return 0, 0, fmt.Errorf("%w: malformed cursor", ErrInvalidListOptions)
		}
	}
	return limit, before, nil
}
