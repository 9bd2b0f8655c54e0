package scoring

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// MaxWindow is the longest window the cost report covers.
const MaxWindow = 366 * 24 * time.Hour

// Usage sums the ledger rows of a group.
type Usage struct {
	Calls     int64 `json:"calls"`
	CacheHits int64 `json:"cache_hits"`
	// CacheHitRatio is CacheHits / Calls (0 without calls).
	CacheHitRatio float64 `json:"cache_hit_ratio"`
	TokensIn      int64   `json:"tokens_in"`
	TokensOut     int64   `json:"tokens_out"`
	// CostUSD is the exact sum of the rows' costs, a JSON number.
	CostUSD json.Number `json:"cost_usd"`
}

// ModelUsage is one model's usage.
type ModelUsage struct {
	Model string `json:"model"`
	Usage
}

// DayUsage is one UTC day's usage, with each model's.
type DayUsage struct {
	Day string `json:"day"`
	Usage
	Models []ModelUsage `json:"models"`
}

// Alert is one daily cost alert.
type Alert struct {
	Day          string      `json:"day"`
	SpendUSD     json.Number `json:"spend_usd"`
	ThresholdUSD json.Number `json:"threshold_usd"`
	CreatedAt    time.Time   `json:"created_at"`
	SentAt       *time.Time  `json:"sent_at"`
}

// Report is the answer of GET /admin/costs: the tenant's model spend in
// the window [From, To), in US dollars.
type Report struct {
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	Currency string       `json:"currency"`
	Total    Usage        `json:"total"`
	ByModel  []ModelUsage `json:"by_model"`
	ByDay    []DayUsage   `json:"by_day"`
	Alerts   []Alert      `json:"alerts"`
}

// parseWindow reads from and to: a date (YYYY-MM-DD, UTC; as "to" it
// includes its day) or an RFC 3339 time (as "to", exclusive). Missing
// bounds are nil: the SQL fills them from the database's clock.
func parseWindow(r *http.Request) (from, to *time.Time, err error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, httpx.Errorf(http.StatusBadRequest, "malformed query string")
	}
	for name, v := range q {
		if name != "from" && name != "to" {
			return nil, nil, httpx.Errorf(http.StatusBadRequest, "unknown query parameter %q", name)
		}
		if len(v) > 1 {
			return nil, nil, httpx.Errorf(http.StatusBadRequest, "query parameter %q is repeated", name)
		}
	}
	parse := func(name string, endOfDay bool) (*time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		if d, err := time.Parse(time.DateOnly, v); err == nil {
			if endOfDay {
				d = d.AddDate(0, 0, 1)
			}
			return &d, nil
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return nil, httpx.Errorf(http.StatusBadRequest, "%s must be a date (2026-01-31) or an RFC 3339 time (2026-01-31T09:00:00Z)", name)
		}
		return &t, nil
	}
	if from, err = parse("from", false); err != nil {
		return nil, nil, err
	}
	if to, err = parse("to", true); err != nil {
		return nil, nil, err
	}
	if from != nil && to != nil {
		if !from.Before(*to) {
			return nil, nil, httpx.Errorf(http.StatusBadRequest, "from must be before to")
		}
		if to.Sub(*from) > MaxWindow {
			return nil, nil, httpx.Errorf(http.StatusBadRequest, "the window is longer than 366 days")
		}
	}
	return from, to, nil
}

// windowSQL resolves the window on the database's clock: by default the
// last seven UTC days, today included; one bound given, the other is seven
// days from it.
const windowSQL = `
SELECT f, t FROM (
  SELECT coalesce($1::timestamptz, $2::timestamptz - interval '7 days',
                  date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '6 days') AS f,
         $2::timestamptz AS t0
) w, LATERAL (SELECT coalesce(t0, f + interval '7 days') AS t) x`

// costsSQL sums the ledger by model, by day, by day and model, and in all,
// in one pass (GROUPING SETS). Row-level security limits it to the
// transaction's tenant.
const costsSQL = `
SELECT grouping(model)::int4 AS no_model, grouping(day)::int4 AS no_day,
       coalesce(model, ''), coalesce(day::text, ''),
       count(*), count(*) FILTER (WHERE cache_hit),
       coalesce(sum(tokens_in), 0)::int8, coalesce(sum(tokens_out), 0)::int8,
       coalesce(sum(cost_usd), 0)::text
FROM (SELECT model, (at AT TIME ZONE 'UTC')::date AS day, cache_hit, tokens_in, tokens_out, cost_usd
      FROM dealix.model_calls WHERE tenant_id = $3 AND at >= $1 AND at < $2) c
GROUP BY GROUPING SETS ((), (model), (day), (day, model))
ORDER BY no_day DESC, no_model DESC, day, model`

// Costs handles GET /admin/costs?from=&to=: the request tenant's model
// spend per model and per UTC day, the cache hit ratio, and the daily
// alerts of the window. Mount it behind authentication and the admin
// check; row-level security keeps it to the admin's tenant.
func (s *Service) Costs(w http.ResponseWriter, r *http.Request) {
	from, to, err := parseWindow(r)
	if err != nil {
		httpx.Fail(w, r, s.cfg.Logger, err)
		return
	}
	rep := Report{Currency: "USD", ByModel: []ModelUsage{}, ByDay: []DayUsage{}, Alerts: []Alert{}}
	err = httpx.InTx(r, s.db, func(ctx context.Context, tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, windowSQL, from, to).Scan(&rep.From, &rep.To); err != nil {
			return err
		}
		if !rep.From.Before(rep.To) || rep.To.Sub(rep.From) > MaxWindow {
			return httpx.Errorf(http.StatusBadRequest, "the window must be 1 second to 366 days long")
		}
		if err := s.sums(ctx, tx, &rep); err != nil {
			return err
		}
		return s.alerts(ctx, tx, &rep)
	})
	if err != nil {
		httpx.Fail(w, r, s.cfg.Logger, err)
		return
	}
	rep.From, rep.To = rep.From.UTC(), rep.To.UTC()
	httpx.JSON(w, http.StatusOK, rep)
}

func (s *Service) sums(ctx context.Context, tx pgx.Tx, rep *Report) error {
	rows, err := tx.Query(ctx, costsSQL, rep.From, rep.To, httpx.TenantOf(ctx))
	if err != nil {
		return err
	}
	defer rows.Close()
	rep.Total.CostUSD = "0"
	for rows.Next() {
		var noModel, noDay int32
		var model, day, cost string
		var u Usage
		if err := rows.Scan(&noModel, &noDay, &model, &day, &u.Calls, &u.CacheHits, &u.TokensIn, &u.TokensOut, &cost); err != nil {
			return err
		}
		u.CostUSD = json.Number(trimZeros(cost))
		if u.Calls > 0 {
			u.CacheHitRatio = float64(u.CacheHits) / float64(u.Calls)
		}
		switch {
		case noModel == 1 && noDay == 1:
			rep.Total = u
		case noDay == 1:
			rep.ByModel = append(rep.ByModel, ModelUsage{Model: model, Usage: u})
		case noModel == 1:
			rep.ByDay = append(rep.ByDay, DayUsage{Day: day, Usage: u, Models: []ModelUsage{}})
		default:
			// The ORDER BY puts every day's row before the days' models.
			for i := range rep.ByDay {
				if rep.ByDay[i].Day == day {
					rep.ByDay[i].Models = append(rep.ByDay[i].Models, ModelUsage{Model: model, Usage: u})
				}
			}
		}
	}
	return rows.Err()
}

func (s *Service) alerts(ctx context.Context, tx pgx.Tx, rep *Report) error {
	rows, err := tx.Query(ctx, `SELECT day::text, spend_usd::text, threshold_usd::text, created_at, sent_at
		FROM dealix.cost_alerts
		WHERE tenant_id = $3 AND day >= ($1::timestamptz AT TIME ZONE 'UTC')::date AND day < (($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1
		ORDER BY day`, rep.From, rep.To, httpx.TenantOf(ctx))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a Alert
		var spend, threshold string
		if err := rows.Scan(&a.Day, &spend, &threshold, &a.CreatedAt, &a.SentAt); err != nil {
			return err
		}
		a.SpendUSD, a.ThresholdUSD = json.Number(trimZeros(spend)), json.Number(trimZeros(threshold))
		rep.Alerts = append(rep.Alerts, a)
	}
	return rows.Err()
}

// Score is a lead's latest score.
type Score struct {
	LeadID        string    `json:"lead_id"`
	Score         int       `json:"score"`
	Reason        string    `json:"reason"`
	Model         string    `json:"model"`
	CacheHit      bool      `json:"cache_hit"`
	CorrelationID *string   `json:"correlation_id"`
	ScoredAt      time.Time `json:"scored_at"`
}

// LeadScore handles GET /api/v1/leads/{id}/score: the lead's latest
// score, 404 until it is scored (or when the lead is another tenant's).
func (s *Service) LeadScore(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		httpx.Fail(w, r, s.cfg.Logger, httpx.Errorf(http.StatusNotFound, "no such lead"))
		return
	}
	var sc Score
	err = httpx.InTx(r, s.db, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT lead_id::text, score, reason, model, cache_hit, correlation_id, scored_at
			FROM dealix.lead_scores WHERE tenant_id = $1 AND lead_id = $2`, httpx.TenantOf(ctx), id).
			Scan(&sc.LeadID, &sc.Score, &sc.Reason, &sc.Model, &sc.CacheHit, &sc.CorrelationID, &sc.ScoredAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return httpx.Errorf(http.StatusNotFound, "the lead has no score (yet)")
		}
		return err
	})
	if err != nil {
		httpx.Fail(w, r, s.cfg.Logger, err)
		return
	}
	httpx.JSON(w, http.StatusOK, sc)
}

// trimZeros drops a decimal's trailing fractional zeros: "1.50000000" ->
// "1.5", "2.00000000" -> "2".
func trimZeros(d string) string {
	if !strings.Contains(d, ".") {
		return d
	}
	d = strings.TrimRight(d, "0")
	return strings.TrimSuffix(d, ".")
}
