package deals

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
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
		return invalid("title", "is required")
	}
	if err := checkText("title", in.Title); err != nil {
		return err
	}
	if in.Owner != nil {
		if err := checkText("owner", *in.Owner); err != nil {
			return err
		}
	}
	if in.Amount == nil {
		return invalid("amount", "is required (a whole number of the currency's minor units)")
	}
	if *in.Amount < 0 || *in.Amount > MaxAmount {
		return invalid("amount", "must be a whole number of minor units from 0 to "+strconv.FormatInt(MaxAmount, 10))
	}
	if !currencyCode.MatchString(in.Currency) {
		return invalid("currency", "must be an ISO 4217 code of three capital letters, such as SAR")
	}
	if in.LeadID != nil {
		id, err := uuid.Parse(*in.LeadID)
		if err != nil {
			return invalid("lead_id", "is not a UUID")
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
			return invalid("reason", "is only for a lost deal")
		}
	case "lost":
		if in.Reason == nil || strings.TrimSpace(*in.Reason) == "" {
			return invalid("reason", "is required when the deal is lost")
		}
		r := strings.TrimSpace(*in.Reason)
		in.Reason = &r
		return checkText("reason", r)
	default:
		return invalid("outcome", "must be won or lost")
	}
	return nil
}

func invalid(field, why string) error {
	return &httpx.Error{
		Status:     http.StatusBadRequest,
		Detail:     field + " " + why,
		Extensions: map[string]any{"errors": []map[string]string{{"field": field, "detail": why}}},
	}
}

func checkText(field, v string) error {
	if pgtext.CheckText(v) != nil {
		return invalid(field, "contains a character that cannot be stored (NUL)")
	}
	if max := limits[field]; max > 0 && utf8.RuneCountInString(v) > max {
		return invalid(field, "is longer than "+strconv.Itoa(max)+" characters")
	}
	return nil
}

func checkStatus(v string) error {
	if !slices.Contains(Statuses, v) {
		return invalid("status", "must be one of "+strings.Join(Statuses, ", "))
	}
	return nil
}

// Page is one page of the list.
type Page struct {
	Items      []Deal `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

type cursor struct {
	CreatedAt time.Time `json:"t"`
	ID        string    `json:"id"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err == nil {
		var id uuid.UUID
		if id, err = uuid.Parse(c.ID); err == nil {
			c.ID = id.String()
		}
	}
	if err != nil || c.CreatedAt.IsZero() {
		return cursor{}, httpx.Errorf(http.StatusBadRequest, "malformed cursor")
	}
	return c, nil
}
