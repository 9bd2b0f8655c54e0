package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// InvoiceRequest is what a checkout asks the provider for.
type InvoiceRequest struct {
	// Amount is in the currency's smallest unit (halalas for SAR).
	Amount   int64
	Currency string
	// Description is shown to the payer.
	Description string
	// CallbackURL is where the provider sends the payer after paying.
	CallbackURL string
	// Metadata travels with the invoice and its payments into the
	// provider's events: the checkout puts the tenant and invoice ids in it.
	Metadata map[string]string
}

// ProviderInvoice is the provider's answer.
type ProviderInvoice struct {
	// ID is the provider's invoice id.
	ID string
	// Status is the provider's status ("initiated" for a new invoice).
	Status string
	// URL is the page where the payer pays.
	URL string
}

// Provider creates invoices at a payment provider. Its events come back
// through the provider's webhook, not through this interface.
type Provider interface {
	// Name identifies the provider in the invoices table ("moyasar").
	Name() string
	CreateInvoice(ctx context.Context, req InvoiceRequest) (ProviderInvoice, error)
}

// ErrProvider wraps every failure of a provider call; the checkout answers
// 502 for it.
var ErrProvider = errors.New("billing: payment provider failed")

// Moyasar is a client of Moyasar's invoices API (POST /v1/invoices with
// HTTP basic authentication, the secret key as the user name). It serves
// the real API and the local Fake alike.
type Moyasar struct {
	// BaseURL is the API's root, for example https://api.moyasar.com.
	BaseURL string
	// SecretKey authenticates the calls.
	SecretKey string
	// Client sends the requests. Default: a client with a 15 s timeout.
	Client *http.Client
}

var defaultClient = &http.Client{Timeout: 15 * time.Second}

// Name implements Provider.
func (m *Moyasar) Name() string { return "moyasar" }

// moyasarInvoice is the part of Moyasar's invoice object the client reads
// and writes.
type moyasarInvoice struct {
	ID          string            `json:"id,omitempty"`
	Status      string            `json:"status,omitempty"`
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Description string            `json:"description"`
	CallbackURL string            `json:"callback_url,omitempty"`
	URL         string            `json:"url,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// CreateInvoice implements Provider.
func (m *Moyasar) CreateInvoice(ctx context.Context, req InvoiceRequest) (ProviderInvoice, error) {
	body, err := json.Marshal(moyasarInvoice{Amount: req.Amount, Currency: req.Currency,
		Description: req.Description, CallbackURL: req.CallbackURL, Metadata: req.Metadata})
	if err != nil {
		return ProviderInvoice{}, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(m.BaseURL, "/")+"/v1/invoices", bytes.NewReader(body))
	if err != nil {
		return ProviderInvoice{}, fmt.Errorf("%w: %v", ErrProvider, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.SetBasicAuth(m.SecretKey, "")
	client := m.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(hr)
	if err != nil {
		return ProviderInvoice{}, fmt.Errorf("%w: %v", ErrProvider, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return ProviderInvoice{}, fmt.Errorf("%w: %v", ErrProvider, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return ProviderInvoice{}, fmt.Errorf("%w: POST /v1/invoices answered %d", ErrProvider, resp.StatusCode)
	}
	var inv moyasarInvoice
	if err := json.Unmarshal(raw, &inv); err != nil || inv.ID == "" {
		return ProviderInvoice{}, fmt.Errorf("%w: POST /v1/invoices answered no invoice", ErrProvider)
	}
	return ProviderInvoice{ID: inv.ID, Status: inv.Status, URL: inv.URL}, nil
}
