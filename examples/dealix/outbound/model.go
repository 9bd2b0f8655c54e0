package outbound

import (
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
)

// Statuses of a campaign.
const (
	StatusPendingApproval = "pending_approval" // held by the approvals policy
	StatusSending         = "sending"          // the send job is queued or running
	StatusSent            = "sent"             // every recipient has its message
	StatusRejected        = "rejected"         // an admin rejected it: nothing is sent
	// StatusExpired is shown, never stored: the approval request ran out
	// of time undecided (approvals.Config.TTL), so nothing is sent and
	// the request can no longer be decided.
	StatusExpired = "expired"
)

// Limits of a campaign; the table's CHECK constraints say the same.
const (
	MaxNameLength    = 200
	MaxSubjectLength = 998 // RFC 5322's line limit
	MaxBodyLength    = 100000
	MaxRecipients    = 10000
	maxEmailLength   = 320
)

// MessageContent is a campaign's message.
type MessageContent struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Counts are a campaign's deliveries.
type Counts struct {
	// Recipients is how many recipients the campaign has.
	Recipients int `json:"recipients"`
	// Sent is how many have their message.
	Sent int `json:"sent"`
	// Pending is how many do not yet (Recipients - Sent).
	Pending int `json:"pending"`
}

// Campaign is a campaign as the API shows it. The recipients' addresses
// are not repeated in it; Counts says how far the send is.
type Campaign struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Message     MessageContent `json:"message"`
	Risk        float64        `json:"risk"`
	Critical    bool           `json:"critical"`
	Status      string         `json:"status"`
	ApprovalID  *string        `json:"approval_request_id"`
	RequestedBy string         `json:"requested_by"`
	DecidedBy   *string        `json:"decided_by"`
	DecidedAt   *time.Time     `json:"decided_at"`
	CreatedAt   time.Time      `json:"created_at"`
	UpdatedAt   time.Time      `json:"updated_at"`
	SentAt      *time.Time     `json:"sent_at"`
	Counts      Counts         `json:"counts"`
}

// createInput is the body of POST /api/v1/outbound/campaigns.
type createInput struct {
	Name       string         `json:"name"`
	Message    MessageContent `json:"message"`
	Recipients []string       `json:"recipients"`
	Risk       float64        `json:"risk"`
	Critical   bool           `json:"critical"`
}

func (in *createInput) validate() error {
	in.Name = strings.TrimSpace(in.Name)
	if err := checkText("name", in.Name, MaxNameLength); err != nil {
		return err
	}
	in.Message.Subject = strings.TrimSpace(in.Message.Subject)
	if err := checkText("message.subject", in.Message.Subject, MaxSubjectLength); err != nil {
		return err
	}
	if strings.ContainsAny(in.Message.Subject, "\r\n") {
		// A line break in a subject would start a header of its own.
		return invalid("message.subject", "must be one line")
	}
	if err := checkText("message.body", in.Message.Body, MaxBodyLength); err != nil {
		return err
	}
	if len(in.Recipients) == 0 || len(in.Recipients) > MaxRecipients {
		return invalid("recipients", "must list 1 to "+strconv.Itoa(MaxRecipients)+" email addresses")
	}
	seen := make(map[string]bool, len(in.Recipients))
	for i, r := range in.Recipients {
		field := "recipients[" + strconv.Itoa(i) + "]"
		if len(r) > maxEmailLength || pgtext.CheckText(r) != nil {
			return invalid(field, "is not an email address")
		}
		addr, err := mail.ParseAddress(r)
		if err != nil || addr.Address != r {
			return invalid(field, "is not an email address")
		}
		// One message per address: the same address spelled in another
		// case is the same mailbox.
		folded := strings.ToLower(r)
		if seen[folded] {
			return invalid(field, "repeats an earlier recipient")
		}
		seen[folded] = true
	}
	if !(in.Risk >= 0 && in.Risk <= 1) { // NaN too
		return invalid("risk", "must be from 0 to 1")
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

func checkText(field, v string, max int) error {
	if v == "" {
		return invalid(field, "is required")
	}
	if pgtext.CheckText(v) != nil {
		return invalid(field, "contains a character that cannot be stored (NUL)")
	}
	if utf8.RuneCountInString(v) > max {
		return invalid(field, "is longer than "+strconv.Itoa(max)+" characters")
	}
	return nil
}
