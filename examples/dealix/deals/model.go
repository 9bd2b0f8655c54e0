package deals

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Statuses a deal can be in: open until closed, then won or lost for good.
var Statuses = []string{"open", "won", "lost"}

// MaxAmount is the largest amount a deal may carry, in minor units.
const MaxAmount int64 = 1_000_000_000_000_000

// Deal is a deal as the API shows it.
//
// Amount is in the currency's minor units (halalas for SAR, cents for
// USD): 125050 with "SAR" is 1,250.50 riyals. Integers never round, and
// the client, which knows each currency's exponent, formats them.
type Deal struct {
	ID         string     `json:"id"`
	LeadID     *string    `json:"lead_id"`
	Title      string     `json:"title"`
	Amount     int64      `json:"amount"`
	Currency   string     `json:"currency"`
	Owner      *string    `json:"owner"`
	Status     string     `json:"status"`
	LostReason *string    `json:"lost_reason"`
	ClosedAt   *time.Time `json:"closed_at"`
	ClosedBy   *string    `json:"closed_by"`
	// RunID names the durable run carrying the close's consequences; set
	// exactly when the deal is closed.
	RunID *string `json:"run_id"`
	// RunStatus is the run's status; only a single deal's GET reads it.
	RunStatus string `json:"run_status,omitempty"`
	// Evidence is the close's evidence record, once the run wrote it.
	Evidence  *Evidence `json:"evidence"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Evidence is the record of a close, written once by the deal's run.
type Evidence struct {
	ID       string    `json:"id"`
	RunID    string    `json:"run_id"`
	Outcome  string    `json:"outcome"`
	Reason   *string   `json:"reason"`
	ClosedBy string    `json:"closed_by"`
	ClosedAt time.Time `json:"closed_at"`
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
	// CorrelationID and TraceID are the closing request's: they find it
	// in the logs and the traces. TraceID is empty when the request was
	// not traced.
	CorrelationID string    `json:"correlation_id"`
	TraceID       string    `json:"trace_id"`
	RecordedAt    time.Time `json:"recorded_at"`
}

// field limits, in characters; the tables' CHECK constraints say the same.
var limits = map[string]int{"title": 200, "owner": 200, "reason": 1000}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// createInput is the body of POST /api/v1/deals.
type createInput struct {
	LeadID   *string `json:"lead_id"`
	Title    string  `json:"title"`
	Amount   *int64  `json:"amount"`
	Currency string  `json:"currency"`
	Owner    *string `json:"owner"`

	leadID *uuid.UUID
}

func (in *createInput) validate() error {
	in.Title = strings.TrimSpace(in.Title)
	if in.Title == "" {
		return httpx.Invalid("title", "is required")
	}
	if err := httpx.CheckText("title", in.Title, limits["title"]); err != nil {
		return err
	}
	if in.Owner != nil {
		if err := httpx.CheckText("owner", *in.Owner, limits["owner"]); err != nil {
			return err
		}
	}
	if in.Amount == nil {
		return httpx.Invalid("amount", "is required (a whole number of the currency's minor units)")
	}
	if *in.Amount < 0 || *in.Amount > MaxAmount {
		return httpx.Invalid("amount", "must be a whole number of minor units from 0 to "+strconv.FormatInt(MaxAmount, 10))
	}
	if !currencyCode.MatchString(in.Currency) {
		return httpx.Invalid("currency", "must be an ISO 4217 code of three capital letters, such as SAR")
	}
	if in.LeadID != nil {
		id, err := uuid.Parse(*in.LeadID)
		if err != nil {
			return httpx.Invalid("lead_id", "is not a UUID")
		}
		in.leadID = &id
	}
	return nil
}

// closeInput is the body of POST /api/v1/deals/{id}/close.
type closeInput struct {
	Outcome string  `json:"outcome"`
	Reason  *string `json:"reason"`
}

func (in *closeInput) validate() error {
	switch in.Outcome {
	case "won":
		if in.Reason != nil {
			return httpx.Invalid("reason", "is only for a lost deal")
		}
	case "lost":
		if in.Reason == nil || strings.TrimSpace(*in.Reason) == "" {
			return httpx.Invalid("reason", "is required when the deal is lost")
		}
		r := strings.TrimSpace(*in.Reason)
		in.Reason = &r
		return httpx.CheckText("reason", r, limits["reason"])
	default:
		return httpx.Invalid("outcome", "must be won or lost")
	}
	return nil
}

func checkStatus(v string) error {
	if !slices.Contains(Statuses, v) {
		return httpx.Invalid("status", "must be one of "+strings.Join(Statuses, ", "))
	}
	return nil
}

// Page is one page of the list.
type Page struct {
	Items      []Deal `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}
