package billing

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/webhooksig"
)

// FakeConfig configures the local Moyasar stand-in.
type FakeConfig struct {
	// SecretKey is the API key callers must present (basic auth user).
	// Required.
	SecretKey string
	// WebhookToken is the secret_token put in every event. Required.
	WebhookToken string
	// WebhookURL is where events are delivered. Default: the invoice's
	// callback_url's origin + "/webhooks/moyasar", which in development is
	// the server that created the invoice. Only loopback addresses are
	// ever called.
	WebhookURL string
	// PayAfter is how long after its creation an invoice is paid.
	// Default 200ms.
	PayAfter time.Duration
	// Logger receives delivery failures. Default slog.Default().
	Logger *slog.Logger
}

// Fake is a local payment provider shaped like Moyasar's invoices API:
// POST /v1/invoices creates an invoice, GET /v1/invoices/{id} shows it.
// Every invoice is paid PayAfter after its creation, and a payment_paid
// event is delivered to the webhook, retried with backoff until the
// webhook answers 2xx or 409 (already received), or the Fake closes. It
// listens on 127.0.0.1 only, and calls loopback addresses only.
type Fake struct {
	cfg    FakeConfig
	ln     net.Listener
	srv    *http.Server
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
	err    error

	mu       sync.Mutex
	invoices map[string]*moyasarInvoice
	targets  map[string]string // invoice id → webhook URL
	accepted [][]byte          // event bodies the webhook accepted
}

// StartFake starts a Fake on its own 127.0.0.1 listener. Close stops it.
func StartFake(cfg FakeConfig) (*Fake, error) {
	if cfg.SecretKey == "" || cfg.WebhookToken == "" {
		return nil, errors.New("billing: fake provider needs a secret key and a webhook token")
	}
	if cfg.PayAfter <= 0 {
		cfg.PayAfter = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WebhookURL != "" {
		if err := checkLoopback(cfg.WebhookURL); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &Fake{cfg: cfg, ln: ln, invoices: map[string]*moyasarInvoice{}, targets: map[string]string{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/invoices", f.create)
	mux.HandleFunc("GET /v1/invoices/{id}", f.get)
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	f.wg.Go(func() { _ = f.srv.Serve(ln) })
	return f, nil
}

// URL is the Fake's base URL, for Moyasar.BaseURL.
func (f *Fake) URL() string { return "http://" + f.ln.Addr().String() }

// Close stops the listener and abandons deliveries not yet made. It is
// safe to call more than once.
func (f *Fake) Close() error {
	f.closed.Do(func() {
		f.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.err = f.srv.Shutdown(ctx)
		f.wg.Wait()
	})
	return f.err
}

// Delivered returns the signed event bodies the webhook accepted, oldest
// first: what a provider would send again on a redelivery.
func (f *Fake) Delivered() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accepted)
}

func (f *Fake) authorized(r *http.Request) bool {
	user, _, ok := r.BasicAuth()
	return ok && subtle.ConstantTimeCompare([]byte(user), []byte(f.cfg.SecretKey)) == 1
}

func fakeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"type": "invalid_request_error", "message": msg})
}

func (f *Fake) create(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(r) {
		fakeError(w, http.StatusUnauthorized, "Invalid authorization credentials")
		return
	}
	var in moyasarInvoice
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil || in.Amount < 100 || in.Currency == "" {
		fakeError(w, http.StatusBadRequest, "amount (at least 100) and currency are required")
		return
	}
	target := f.cfg.WebhookURL
	if target == "" {
		cb, err := url.Parse(in.CallbackURL)
		if err != nil || cb.Host == "" {
			fakeError(w, http.StatusBadRequest, "callback_url must be an absolute URL")
			return
		}
		target = cb.Scheme + "://" + cb.Host + "/webhooks/moyasar"
	}
	if err := checkLoopback(target); err != nil {
		fakeError(w, http.StatusBadRequest, err.Error())
		return
	}
	in.ID = uuid.NewString()
	in.Status = "initiated"
	in.URL = f.URL() + "/invoices/" + in.ID
	stored := in // payLater changes the stored copy; in is answered
	f.mu.Lock()
	f.invoices[in.ID] = &stored
	f.targets[in.ID] = target
	f.mu.Unlock()
	f.wg.Go(func() { f.payLater(in.ID) })

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(in)
}

func (f *Fake) get(w http.ResponseWriter, r *http.Request) {
	if !f.authorized(r) {
		fakeError(w, http.StatusUnauthorized, "Invalid authorization credentials")
		return
	}
	f.mu.Lock()
	inv, ok := f.invoices[r.PathValue("id")]
	var out moyasarInvoice
	if ok {
		out = *inv
	}
	f.mu.Unlock()
	if !ok {
		fakeError(w, http.StatusNotFound, "Object not found")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// payLater pays the invoice after PayAfter and delivers the event.
func (f *Fake) payLater(id string) {
	select {
	case <-f.ctx.Done():
		return
	case <-time.After(f.cfg.PayAfter):
	}
	f.mu.Lock()
	inv := f.invoices[id]
	inv.Status = "paid"
	target := f.targets[id]
	snapshot := *inv
	f.mu.Unlock()

	now := time.Now().UTC()
	event := Event{
		ID: uuid.NewString(), Type: EventPaymentPaid, CreatedAt: now, AccountName: "dealix-dev", Live: false,
		Data: Payment{
			ID: uuid.NewString(), Status: "paid", Amount: snapshot.Amount, Currency: snapshot.Currency,
			Description: snapshot.Description, InvoiceID: snapshot.ID, Metadata: snapshot.Metadata,
			Source:    &PaymentSource{Type: "creditcard", Company: "visa", Name: "Test Payer", Number: "4111-11XX-XXXX-1111", Message: "APPROVED"},
			CreatedAt: now, UpdatedAt: now,
		},
	}
	body, err := webhooksig.SignMoyasar(f.cfg.WebhookToken, EventBody(event))
	if err != nil {
		f.cfg.Logger.Error("billing: fake provider: sign event", "error", err)
		return
	}
	f.deliver(target, body)
}

// deliver posts body to target until it is accepted, backing off from
// 100ms to 5s between attempts, for at most 20 attempts.
func (f *Fake) deliver(target string, body []byte) {
	delay := 100 * time.Millisecond
	for attempt := 1; attempt <= 20; attempt++ {
		status, err := f.post(target, body)
		if err == nil && (status/100 == 2 || status == http.StatusConflict) {
			f.mu.Lock()
			f.accepted = append(f.accepted, body)
			f.mu.Unlock()
			return
		}
		f.cfg.Logger.Warn("billing: fake provider: webhook not accepted; retrying", "attempt", attempt, "status", status, "error", err)
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (f *Fake) post(target string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// checkLoopback refuses a webhook target that is not an http(s) URL on a
// loopback address: the fake must never call out of the machine, whatever
// Host header the checkout request carried.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("billing: fake provider: webhook URL %q is not http(s)", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("billing: fake provider: webhook host %q is not a loopback address", host)
}
