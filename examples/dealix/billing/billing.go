package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/webhooksig"
)

// KindMoyasarEvent is the kind of the jobs the webhook enqueues.
const KindMoyasarEvent = "moyasar.event"

// Invoice is an invoice as the API shows it.
type Invoice struct {
	ID                string     `json:"id"`
	Plan              string     `json:"plan"`
	AmountHalalas     int64      `json:"amount_halalas"`
	Currency          string     `json:"currency"`
	Status            string     `json:"status"`
	Provider          string     `json:"provider"`
	ProviderInvoiceID *string    `json:"provider_invoice_id"`
	PaymentURL        *string    `json:"payment_url"`
	PaidAt            *time.Time `json:"paid_at"`
	CreatedAt         time.Time  `json:"created_at"`
	UpdatedAt         time.Time  `json:"updated_at"`
}

const columns = `id::text, plan, amount_halalas, currency, status, provider, provider_invoice_id, payment_url, paid_at, created_at, updated_at`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var i Invoice
	err := row.Scan(&i.ID, &i.Plan, &i.AmountHalalas, &i.Currency, &i.Status, &i.Provider, &i.ProviderInvoiceID, &i.PaymentURL, &i.PaidAt, &i.CreatedAt, &i.UpdatedAt)
	return i, err
}

// Handlers serves the checkout and invoice endpoints.
type Handlers struct {
	// DB is the app role's pool (bound by row-level security).
	DB httpx.DB
	// Provider creates the invoices. Required.
	Provider Provider
	// PublicURL is the server's URL as the payer's browser sees it, for
	// the provider's callback_url. Default: http(s):// + the request's
	// Host.
	PublicURL string
	// MaxBodyBytes bounds a request body. Default httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures.
	Log *slog.Logger
}

type checkoutInput struct {
	Plan string `json:"plan"`
}

// Checkout handles POST /api/v1/checkout {"plan": "<id>"}: behind the
// idempotency middleware in transactional mode, so the invoice row, the
// provider's ids on it and the stored response commit together, and a
// retried request with the same key gets the same invoice. The provider is
// called inside that transaction: when the commit fails after the call,
// the provider keeps an invoice nobody points to, which is never paid.
func (h *Handlers) Checkout(w http.ResponseWriter, r *http.Request) {
	var in checkoutInput
	if err := httpx.Decode(w, r, h.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if in.Plan == "" || len(in.Plan) > 40 || pgtext.CheckText(in.Plan) != nil {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "plan is required: the id of a plan, such as growth"))
		return
	}
	tenant, ok := tenancy.TenantFrom(r.Context())
	if !ok {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant"))
		return
	}
	var inv Invoice
	err := httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		var name, currency string
		var amount int64
		err := tx.QueryRow(ctx, `SELECT name, price_halalas, currency FROM dealix.plans WHERE id = $1`, in.Plan).Scan(&name, &amount, &currency)
		if errors.Is(err, pgx.ErrNoRows) {
			return httpx.Errorf(http.StatusBadRequest, "no plan %q; see GET /api/v1/pricing/plans", in.Plan)
		}
		if err != nil {
			return err
		}
		var id string
		if err := tx.QueryRow(ctx, `INSERT INTO dealix.invoices (tenant_id, plan, amount_halalas, currency, provider)
			VALUES ($1, $2, $3, $4, $5) RETURNING id::text`, tenant, in.Plan, amount, currency, h.Provider.Name()).Scan(&id); err != nil {
			return err
		}
		pinv, err := h.Provider.CreateInvoice(ctx, InvoiceRequest{
			Amount: amount, Currency: currency, Description: "Dealix " + name + " plan",
			CallbackURL: h.publicURL(r) + "/api/v1/invoices/" + id,
			Metadata:    map[string]string{MetaTenant: tenant, MetaInvoice: id},
		})
		if err != nil {
			h.Log.ErrorContext(ctx, "checkout: payment provider failed", "error", err)
			return httpx.Errorf(http.StatusBadGateway, "the payment provider is unavailable; retry with the same Idempotency-Key")
		}
		inv, err = scanInvoice(tx.QueryRow(ctx, `UPDATE dealix.invoices SET provider_invoice_id = $2, payment_url = $3, updated_at = now()
			WHERE tenant_id = $4 AND id = $1 RETURNING `+columns, id, pgtext.Clean(pinv.ID, 200), pgtext.Clean(pinv.URL, 2000), tenant))
		return err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/api/v1/invoices/"+inv.ID)
	httpx.JSON(w, http.StatusCreated, inv)
}

func (h *Handlers) publicURL(r *http.Request) string {
	if h.PublicURL != "" {
		return h.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Get handles GET /api/v1/invoices/{id}: another tenant's invoice is 404,
// as a missing one.
func (h *Handlers) Get(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusNotFound, "no such invoice"))
		return
	}
	var inv Invoice
	err = httpx.InTx(r, h.DB, func(ctx context.Context, tx pgx.Tx) error {
		inv, err = scanInvoice(tx.QueryRow(ctx, `SELECT `+columns+` FROM dealix.invoices WHERE tenant_id = $1 AND id = $2`, httpx.TenantOf(ctx), id))
		if errors.Is(err, pgx.ErrNoRows) {
			return httpx.Errorf(http.StatusNotFound, "no such invoice")
		}
		return err
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	httpx.JSON(w, http.StatusOK, inv)
}

// Webhook receives the provider's events behind webhooksig's Moyasar
// verifier (without the middleware's replay guard: the claim is made here,
// in the enqueuing transaction). The tenant is the one the verified
// event's metadata names. In one transaction scoped to it, the delivery is
// claimed (ReplayStore.ClaimTx) and a job enqueued on Queue, so an event
// is enqueued exactly once however often it is delivered; a redelivery is
// acknowledged with 200 and "duplicate". An event naming no tenant is
// acknowledged and ignored: it is not about a Dealix invoice.
type Webhook struct {
	DB     tenancy.Beginner
	Jobs   *dlq.Client
	Replay *webhooksig.ReplayStore
	// Queue is the queue the jobs go to ("webhooks").
	Queue string
	Log   *slog.Logger
}

// ServeHTTP handles POST /webhooks/moyasar behind the verifier.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, ok := webhooksig.DeliveryFromContext(r.Context())
	if !ok {
		httpx.Fail(w, r, h.Log, errors.New("billing: webhook mounted without its verifier"))
		return
	}
	var ev Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusBadRequest, "the event is not a Moyasar event"))
		return
	}
	ctx, err := tenancy.WithTenant(r.Context(), ev.Tenant())
	if err != nil {
		h.Log.InfoContext(r.Context(), "moyasar webhook: event names no tenant; ignored", "type", ev.Type)
		httpx.JSON(w, http.StatusOK, intake.Accepted{Status: "ignored"})
		return
	}
	out, retryAfter, err := intake.Ingest(ctx, h.DB, h.Jobs, h.Replay, d, dlq.JobParams{
		Queue: h.Queue, Kind: KindMoyasarEvent, Payload: EventBody(ev), DedupKey: "moyasar:" + d.ID,
	})
	if err != nil {
		httpx.Fail(w, r, h.Log, err)
		return
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		httpx.Fail(w, r, h.Log, httpx.Errorf(http.StatusConflict, "the delivery is being processed; retry later"))
		return
	}
	httpx.JSON(w, http.StatusOK, out)
}

// Worker runs the moyasar.event jobs: the effects of one verified event,
// in one transaction scoped to the job's tenant on the app role.
type Worker struct {
	DB       tenancy.Beginner
	Provider string // the provider name invoices were created with ("moyasar")
	Log      *slog.Logger
}

// Work implements dlq.Handler. payment_paid marks the invoice paid and
// sets the tenant's plan, once: a second payment event for a paid invoice
// changes nothing. payment_failed marks an invoice still initiated as
// failed, and never touches a paid one, so events arriving out of order
// cannot un-pay an invoice. An event about an invoice the tenant does not
// have, or whose amount or currency differ from the invoice's, is
// dead-lettered at once with the reason: retrying cannot fix it.
func (wk *Worker) Work(ctx context.Context, job *dlq.Job) error {
	var ev Event
	if err := json.Unmarshal(job.Payload, &ev); err != nil {
		return dlq.Discard(fmt.Errorf("moyasar event: %w", err))
	}
	if ev.Type != EventPaymentPaid && ev.Type != EventPaymentFailed {
		return nil
	}
	return tenancy.InTx(ctx, wk.DB, func(tx pgx.Tx) error {
		var id, plan, status, currency string
		var amount int64
		err := tx.QueryRow(ctx, `SELECT id::text, plan, status, amount_halalas, currency FROM dealix.invoices
			WHERE tenant_id = $3 AND provider = $1 AND provider_invoice_id = $2 FOR UPDATE`, wk.Provider, ev.Data.InvoiceID, job.Tenant).Scan(&id, &plan, &status, &amount, &currency)
		if errors.Is(err, pgx.ErrNoRows) {
			return dlq.Discard(fmt.Errorf("moyasar event %s: the tenant has no invoice %q", ev.ID, ev.Data.InvoiceID))
		}
		if err != nil {
			return err
		}
		if ev.Type == EventPaymentFailed {
			if status != "initiated" {
				return nil // paid (final) or failed already
			}
			_, err := tx.Exec(ctx, `UPDATE dealix.invoices SET status = 'failed', failure_reason = $2, updated_at = now() WHERE tenant_id = $3 AND id = $1`,
				id, pgtext.Clean(ev.Data.Status, 500), job.Tenant)
			return err
		}
		if status == "paid" {
			return nil
		}
		if ev.Data.Amount != amount || ev.Data.Currency != currency {
			return dlq.Discard(fmt.Errorf("moyasar event %s: paid %d %s for invoice %s of %d %s",
				ev.ID, ev.Data.Amount, pgtext.Clean(ev.Data.Currency, 8), id, amount, currency))
		}
		if _, err := tx.Exec(ctx, `UPDATE dealix.invoices SET status = 'paid', payment_id = $2, paid_at = now(), updated_at = now()
			WHERE tenant_id = $3 AND id = $1`, id, pgtext.Clean(ev.Data.ID, 200), job.Tenant); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE dealix.tenants SET plan = $1 WHERE tenant_id = $2`, plan, job.Tenant)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			// Retried: the tenant's row may be created meanwhile (sign-up
			// racing its first payment); dead after the attempts otherwise.
			return fmt.Errorf("moyasar event %s: tenant %s has no row in dealix.tenants", ev.ID, job.Tenant)
		}
		wk.Log.InfoContext(ctx, "invoice paid; plan active", "invoice", id, "plan", plan)
		return nil
	})
}
