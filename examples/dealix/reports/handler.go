package reports

import (
	"context"
	"encoding/csv"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// TxBeginner opens a transaction with options: the app role's pool.
type TxBeginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Handler serves GET /api/v1/reports/weekly.
type Handler struct {
	// DB is the app role's pool, bound by row-level security.
	DB TxBeginner
	// Log receives server errors.
	Log *slog.Logger
}

// ServeHTTP answers the week named by ?week= (default: the current week
// by the database's clock) for the caller's tenant: JSON, or CSV when the
// Accept header prefers text/csv. A malformed week is a 400 problem.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var pack Pack
	err := pgx.BeginTxFunc(r.Context(), h.DB, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// This handler opened tx itself, so it scopes it (the one case
		// SetTenantTx is for).
		if err := tenancy.SetTenantTx(r.Context(), tx); err != nil {
			return err
		}
		week, err := h.week(r, tx)
		if err != nil {
			return err
		}
		pack, err = load(r.Context(), tx, week)
		return err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if wantsCSV(r.Header.Get("Accept")) {
		writeCSV(w, pack)
		return
	}
	httpx.JSON(w, http.StatusOK, pack)
}

// week is the requested week, or the current one on the database's clock.
func (h *Handler) week(r *http.Request, tx pgx.Tx) (Week, error) {
	if s := r.URL.Query().Get("week"); s != "" {
		w, err := ParseWeek(s)
		if err != nil {
			return Week{}, httpx.Errorf(http.StatusBadRequest, "%v", err)
		}
		return w, nil
	}
	var now time.Time
	if err := tx.QueryRow(r.Context(), "SELECT now()").Scan(&now); err != nil {
		return Week{}, err
	}
	return WeekOf(now), nil
}

// wantsCSV reports whether accept ranks text/csv above application/json.
func wantsCSV(accept string) bool {
	csvQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(accept, ",") {
		media, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		switch strings.ToLower(strings.TrimSpace(media)) {
		case "text/csv":
			csvQ = max(csvQ, q)
		case "application/json", "*/*", "application/*":
			jsonQ = max(jsonQ, q)
		}
	}
	return csvQ > 0 && csvQ >= jsonQ
}

// writeCSV writes the pack as one table: a section column, then the
// section's fields, one row per item and a row per total.
func writeCSV(w http.ResponseWriter, p Pack) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="dealix-weekly-`+p.Week+`.csv"`)
	cw := csv.NewWriter(w)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	str := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	rows := [][]string{{"section", "id", "name_or_title", "detail", "amount", "currency", "at"}}
	rows = append(rows, []string{"week", p.Week, "", "", "", "", ts(p.From)})
	for _, l := range p.NewLeads {
		rows = append(rows, []string{"new_lead", l.ID, l.Name, l.Status + " " + str(l.Source), "", "", ts(l.CreatedAt)})
	}
	for _, m := range p.MeetingsBooked {
		rows = append(rows, []string{"meeting_booked", m.ID, m.Email, "lead " + m.LeadID, "", "", ts(m.BookedAt)})
	}
	for _, d := range p.DealsClosed {
		detail := d.Outcome + " by " + d.ClosedBy
		if d.Evidence != nil {
			detail += " correlation " + d.Evidence.CorrelationID + " trace " + d.Evidence.TraceID
		}
		rows = append(rows, []string{"deal_closed", d.ID, d.Title, detail, strconv.FormatInt(d.Amount, 10), d.Currency, ts(d.ClosedAt)})
	}
	rows = append(rows, []string{"outbound_sent", "", "", strconv.FormatInt(p.OutboundSent.Campaigns, 10) + " campaigns",
		strconv.FormatInt(p.OutboundSent.Messages, 10), "", ""})
	for _, a := range p.ApprovalsPending {
		rows = append(rows, []string{"approval_pending", a.ID, a.Kind, "requested by " + a.RequestedBy, "", "", ts(a.CreatedAt)})
	}
	for _, m := range p.ModelSpend.ByModel {
		rows = append(rows, []string{"model_spend", "", m.Model, strconv.FormatInt(m.Calls, 10) + " calls", m.CostUSD, "USD", ""})
	}
	rows = append(rows, []string{"model_spend_total", "", "", strconv.FormatInt(p.ModelSpend.Calls, 10) + " calls", p.ModelSpend.CostUSD, "USD", ""})
	_ = cw.WriteAll(rows) // a failed write is the client gone; nothing to answer
}
