package billing

import (
	"encoding/json"
	"time"
)

// Moyasar event types the worker acts on; others are acknowledged and
// ignored.
const (
	EventPaymentPaid   = "payment_paid"
	EventPaymentFailed = "payment_failed"
)

// Metadata keys the checkout sets on the provider's invoice.
const (
	MetaTenant  = "dealix_tenant_id"
	MetaInvoice = "dealix_invoice_id"
)

// Event is a Moyasar webhook event: the envelope and the payment it is
// about. Unknown members are ignored (the provider adds fields). The
// secret_token member is read by the verifier and never stored.
type Event struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	CreatedAt   time.Time `json:"created_at"`
	AccountName string    `json:"account_name,omitempty"`
	Live        bool      `json:"live"`
	Data        Payment   `json:"data"`
}

// Payment is the payment object of an event.
type Payment struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Amount      int64             `json:"amount"`
	Fee         int64             `json:"fee"`
	Currency    string            `json:"currency"`
	Description string            `json:"description,omitempty"`
	InvoiceID   string            `json:"invoice_id"`
	Metadata    map[string]string `json:"metadata"`
	Source      *PaymentSource    `json:"source,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

// PaymentSource is how the payer paid.
type PaymentSource struct {
	Type    string `json:"type"`
	Company string `json:"company,omitempty"`
	Name    string `json:"name,omitempty"`
	Number  string `json:"number,omitempty"`
	Message string `json:"message,omitempty"`
}

// Tenant is the tenant the event's invoice belongs to, from its metadata.
func (e Event) Tenant() string { return e.Data.Metadata[MetaTenant] }

// EventBody encodes e as Moyasar sends it, without the secret token: sign
// it with webhooksig.SignMoyasar.
func EventBody(e Event) []byte {
	b, _ := json.Marshal(e) // a struct of strings, numbers and times always encodes
	return b
}

// Development secrets: the defaults of the server's Moyasar settings, and
// what the sendwebhook command signs with. Never use them in production.
const (
	// DevSecretKey is the API key of the local fake provider
	// (DEALIX_MOYASAR_SECRET_KEY's default).
	DevSecretKey = "sk_test_dealix_dev"
	// DevWebhookToken is the webhook secret token
	// (DEALIX_MOYASAR_WEBHOOK_TOKEN's default).
	DevWebhookToken = "dealix-dev-moyasar-token"
)
