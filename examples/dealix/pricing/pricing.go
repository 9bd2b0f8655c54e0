// Package pricing serves the public price list, GET /api/v1/pricing/plans:
// the starter, growth and scale plans. Internal plans (the 1 SAR pilot)
// live in the same table and are never listed.
package pricing

import (
	"context"
	"embed"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/migrate"
)

// Schema holds the reference server's own tables.
const Schema = "dealix"

//go:embed migrations/*.sql
var migrationFS embed.FS

// MigrationSource is this domain's set of migrations.
func MigrationSource() migrate.Source {
	return migrate.Source{Package: "pricing", FS: migrationFS, Schema: Schema}
}

// Migrate creates the plans table with its rows. Run it as the schema's
// owner; it is safe on every start.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrate.Apply(ctx, pool, MigrationSource())
	return err
}

// Querier runs a query: the app role's pool. Plans are not tenant data,
// so no tenant transaction is needed and the route is public.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Plan is one public plan.
type Plan struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Description   string   `json:"description"`
	Price         Money    `json:"price"`
	BillingPeriod string   `json:"billing_period"`
	Seats         int      `json:"seats"`
	Features      []string `json:"features"`
}

// Money is an amount in the currency's minor unit (halalas for SAR).
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Handler serves GET /api/v1/pricing/plans.
type Handler struct {
	DB  Querier
	Log *slog.Logger
}

// ServeHTTP lists the public plans, cheapest first.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rows, err := h.DB.Query(r.Context(), `SELECT id, name, description, price_halalas, currency, billing_period, seats, features
		FROM dealix.plans WHERE public ORDER BY sort_order, id`)
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	plans, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Plan, error) {
		var p Plan
		err := row.Scan(&p.ID, &p.Name, &p.Description, &p.Price.Amount, &p.Price.Currency, &p.BillingPeriod, &p.Seats, &p.Features)
		return p, err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	httpx.JSON(w, http.StatusOK, map[string]any{"plans": plans})
}
