package reports

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Pack is one tenant's week.
type Pack struct {
	Week             string       `json:"week"`
	From             time.Time    `json:"from"`
	To               time.Time    `json:"to"`
	NewLeads         []Lead       `json:"new_leads"`
	MeetingsBooked   []Meeting    `json:"meetings_booked"`
	DealsClosed      []ClosedDeal `json:"deals_closed"`
	OutboundSent     OutboundSent `json:"outbound_sent"`
	ApprovalsPending []Approval   `json:"approvals_pending"`
	ModelSpend       ModelSpend   `json:"model_spend"`
}

// Lead is a lead created during the week.
type Lead struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Company   *string   `json:"company"`
	Source    *string   `json:"source"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// Meeting is a meeting booked during the week and not canceled.
type Meeting struct {
	ID        string     `json:"id"`
	LeadID    string     `json:"lead_id"`
	Email     string     `json:"email"`
	StartTime *time.Time `json:"start_time"`
	BookedAt  time.Time  `json:"booked_at"`
}

// ClosedDeal is a deal closed during the week, with the evidence its
// deal-closed run recorded (nil until the run has written it).
type ClosedDeal struct {
	ID       string    `json:"id"`
	Title    string    `json:"title"`
	Outcome  string    `json:"outcome"`
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
	ClosedBy string    `json:"closed_by"`
	ClosedAt time.Time `json:"closed_at"`
	Evidence *Evidence `json:"evidence"`
}

// Evidence is what the deal-closed run recorded about a close.
type Evidence struct {
	CorrelationID string    `json:"correlation_id"`
	TraceID       string    `json:"trace_id"`
	RecordedAt    time.Time `json:"recorded_at"`
}

// OutboundSent counts the outbound messages sent during the week.
type OutboundSent struct {
	Messages  int64 `json:"messages"`
	Campaigns int64 `json:"campaigns"`
}

// Approval is a request still waiting for a decision at the moment of the
// report.
type Approval struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	RequestedBy string    `json:"requested_by"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// ModelSpend is the week's model calls from the cost ledger. Amounts are
// decimal strings of US dollars, exact to the ledger's eight places.
type ModelSpend struct {
	Calls   int64        `json:"calls"`
	CostUSD string       `json:"cost_usd"`
	ByModel []ModelCosts `json:"by_model"`
}

// ModelCosts is one model's share of the week's spend.
type ModelCosts struct {
	Model   string `json:"model"`
	Calls   int64  `json:"calls"`
	CostUSD string `json:"cost_usd"`
}

// Sections' queries, each reading the tenant's ($3) rows of [$1, $2). The
// tenant is named besides row-level security's predicate, so a database
// sharded by tenant_id routes each to the tenant's shard.
const (
	leadsSQL = `SELECT id::text, name, company, source, status, created_at FROM dealix.leads
WHERE tenant_id = $3 AND created_at >= $1 AND created_at < $2 ORDER BY created_at, id`
	meetingsSQL = `SELECT id::text, lead_id::text, email, start_time, booked_at FROM dealix.meetings
WHERE tenant_id = $3 AND status = 'booked' AND booked_at >= $1 AND booked_at < $2 ORDER BY booked_at, id`
	dealsSQL = `SELECT d.id::text, d.title, d.status, d.amount, d.currency, d.closed_by, d.closed_at,
       e.correlation_id, e.trace_id, e.recorded_at
FROM dealix.deals d LEFT JOIN dealix.deal_evidence e ON e.tenant_id = d.tenant_id AND e.deal_id = d.id
WHERE d.tenant_id = $3 AND d.closed_at >= $1 AND d.closed_at < $2 ORDER BY d.closed_at, d.id`
	outboundSQL = `SELECT count(*), count(DISTINCT campaign_id) FROM dealix.outbound_messages
WHERE tenant_id = $3 AND status = 'sent' AND sent_at >= $1 AND sent_at < $2`
	approvalsSQL = `SELECT id::text, kind, requested_by, created_at, expires_at FROM platform.approvals_requests
WHERE tenant_id = $1 AND status = 'pending' AND expires_at > now() ORDER BY created_at, id`
	spendSQL = `SELECT model, count(*), sum(cost_usd)::text FROM dealix.model_calls
WHERE tenant_id = $3 AND at >= $1 AND at < $2 GROUP BY model ORDER BY model`
)

// load reads the pack for w in tx, a transaction scoped to the tenant.
func load(ctx context.Context, tx pgx.Tx, w Week) (Pack, error) {
	p := Pack{Week: w.String(), From: w.Start(), To: w.End(),
		NewLeads: []Lead{}, MeetingsBooked: []Meeting{}, DealsClosed: []ClosedDeal{},
		ApprovalsPending: []Approval{}, ModelSpend: ModelSpend{CostUSD: "0", ByModel: []ModelCosts{}}}
	from, to, tenant := w.Start(), w.End(), httpx.TenantOf(ctx)
	var err error
	if p.NewLeads, err = collect(ctx, tx, leadsSQL, []any{from, to, tenant}, func(r pgx.Row) (l Lead, err error) {
		err = r.Scan(&l.ID, &l.Name, &l.Company, &l.Source, &l.Status, &l.CreatedAt)
		return l, err
	}); err != nil {
		return p, err
	}
	if p.MeetingsBooked, err = collect(ctx, tx, meetingsSQL, []any{from, to, tenant}, func(r pgx.Row) (m Meeting, err error) {
		err = r.Scan(&m.ID, &m.LeadID, &m.Email, &m.StartTime, &m.BookedAt)
		return m, err
	}); err != nil {
		return p, err
	}
	if p.DealsClosed, err = collect(ctx, tx, dealsSQL, []any{from, to, tenant}, scanClosedDeal); err != nil {
		return p, err
	}
	if err = tx.QueryRow(ctx, outboundSQL, from, to, tenant).Scan(&p.OutboundSent.Messages, &p.OutboundSent.Campaigns); err != nil {
		return p, err
	}
	if p.ApprovalsPending, err = collect(ctx, tx, approvalsSQL, []any{tenant}, func(r pgx.Row) (a Approval, err error) {
		err = r.Scan(&a.ID, &a.Kind, &a.RequestedBy, &a.CreatedAt, &a.ExpiresAt)
		return a, err
	}); err != nil {
		return p, err
	}
	return p, loadSpend(ctx, tx, from, to, tenant, &p.ModelSpend)
}

func scanClosedDeal(r pgx.Row) (ClosedDeal, error) {
	var d ClosedDeal
	var correlation, trace *string
	var recorded *time.Time
	if err := r.Scan(&d.ID, &d.Title, &d.Outcome, &d.Amount, &d.Currency, &d.ClosedBy, &d.ClosedAt, &correlation, &trace, &recorded); err != nil {
		return d, err
	}
	if correlation != nil && trace != nil && recorded != nil {
		d.Evidence = &Evidence{CorrelationID: *correlation, TraceID: *trace, RecordedAt: *recorded}
	}
	return d, nil
}

// loadSpend sums the ledger per model; the total is summed by PostgreSQL
// too, so no float ever touches an amount.
func loadSpend(ctx context.Context, tx pgx.Tx, from, to time.Time, tenant string, s *ModelSpend) error {
	var err error
	if s.ByModel, err = collect(ctx, tx, spendSQL, []any{from, to, tenant}, func(r pgx.Row) (m ModelCosts, err error) {
		err = r.Scan(&m.Model, &m.Calls, &m.CostUSD)
		return m, err
	}); err != nil {
		return err
	}
	return tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(cost_usd), 0)::text FROM dealix.model_calls WHERE tenant_id = $3 AND at >= $1 AND at < $2`,
		from, to, tenant).Scan(&s.Calls, &s.CostUSD)
}

func collect[T any](ctx context.Context, tx pgx.Tx, sql string, args []any, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if out == nil {
		out = []T{}
	}
	return out, err
}
