package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/webhooksig"
)

// billingConfig is the checkout's configuration, read from the
// environment:
//
//	DEALIX_MOYASAR_API_URL        Moyasar's API root (https://api.moyasar.com); unset: the
//	                              local fake provider on a loopback listener (development)
//	DEALIX_MOYASAR_SECRET_KEY     the API secret key; default billing.DevSecretKey
//	DEALIX_MOYASAR_WEBHOOK_TOKEN  the webhook secret token(s), comma-separated for rotation;
//	                              default billing.DevWebhookToken
//	DEALIX_MOYASAR_PAY_AFTER      how long the fake waits before paying; default 500ms
//	DEALIX_PUBLIC_URL             the server's URL for the payer's callback; default: the
//	                              request's scheme and Host
type billingConfig struct {
	apiURL, secretKey, publicURL string
	tokens                       []string
	payAfter                     time.Duration
	devSecrets                   bool
}

func loadBillingConfig(getenv func(string) string) billingConfig {
	c := billingConfig{
		apiURL:    strings.TrimSpace(getenv("DEALIX_MOYASAR_API_URL")),
		secretKey: strings.TrimSpace(getenv("DEALIX_MOYASAR_SECRET_KEY")),
		publicURL: strings.TrimRight(strings.TrimSpace(getenv("DEALIX_PUBLIC_URL")), "/"),
		tokens:    splitSecrets(getenv("DEALIX_MOYASAR_WEBHOOK_TOKEN")),
		payAfter:  500 * time.Millisecond,
	}
	if c.secretKey == "" {
		c.secretKey, c.devSecrets = billing.DevSecretKey, true
	}
	if c.tokens == nil {
		c.tokens, c.devSecrets = []string{billing.DevWebhookToken}, true
	}
	if d, err := time.ParseDuration(strings.TrimSpace(getenv("DEALIX_MOYASAR_PAY_AFTER"))); err == nil && d > 0 {
		c.payAfter = d
	}
	return c
}

// mountBilling registers the checkout, the invoices, the Moyasar webhook
// (public: the secret token authenticates it) and its job handler, and in
// development starts the fake provider, stopped when the server's
// background work stops.
func (srv *Server) mountBilling(mux *http.ServeMux, svc *services) {
	log := srv.cfg.Logger
	bc := loadBillingConfig(os.Getenv)
	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }

	var provider billing.Provider
	if bc.apiURL != "" {
		if bc.devSecrets {
			log.Warn("billing: DEALIX_MOYASAR_API_URL is set but the Moyasar secret key or webhook token is the development default")
		}
		provider = &billing.Moyasar{BaseURL: bc.apiURL, SecretKey: bc.secretKey}
	} else {
		fake, err := billing.StartFake(billing.FakeConfig{
			SecretKey: bc.secretKey, WebhookToken: bc.tokens[0], PayAfter: bc.payAfter, Logger: log,
		})
		if err != nil {
			log.Error("billing: the local payment provider did not start; checkouts will answer 502", "error", err)
			provider = unavailableProvider{}
		} else {
			log.Info("billing: local fake Moyasar provider", "url", fake.URL())
			provider = &billing.Moyasar{BaseURL: fake.URL(), SecretKey: bc.secretKey}
			srv.paymentFake = fake
			// Closed with the services at Shutdown; and when New fails
			// after this point, with the background context it cancels.
			svc.closers = append(svc.closers, func() { _ = fake.Close() })
			stop := srv.bgCtx
			go func() {
				<-stop.Done()
				_ = fake.Close()
			}()
		}
	}

	h := &billing.Handlers{DB: srv.db.app, Provider: provider, PublicURL: bc.publicURL, MaxBodyBytes: srv.cfg.MaxBodyBytes, Log: log}
	mux.Handle("POST /api/v1/checkout", authed(svc.idemKey.Handler(http.HandlerFunc(h.Checkout))))
	mux.Handle("GET /api/v1/invoices/{id}", authed(http.HandlerFunc(h.Get)))

	verifier, err := webhooksig.NewMoyasar(webhooksig.MoyasarConfig{Tokens: bc.tokens})
	must(err)
	mw, err := webhooksig.New(verifier, webhooksig.Config{MaxBodyBytes: srv.cfg.MaxBodyBytes, Logger: log})
	must(err)
	replay, err := webhooksig.NewReplayStore(srv.db.app, webhooksig.ReplayStoreConfig{})
	must(err)
	mux.Handle("POST /webhooks/moyasar", mw.Handler(&billing.Webhook{
		DB: srv.db.app, Jobs: srv.platform.Jobs, Replay: replay, Queue: QueueWebhooks, Log: log,
	}))
	srv.platform.Handle(QueueWebhooks, billing.KindMoyasarEvent, &billing.Worker{DB: srv.db.app, Provider: provider.Name(), Log: log})
}

// unavailableProvider stands in when the fake provider could not start.
type unavailableProvider struct{}

func (unavailableProvider) Name() string { return "moyasar" }

func (unavailableProvider) CreateInvoice(context.Context, billing.InvoiceRequest) (billing.ProviderInvoice, error) {
	return billing.ProviderInvoice{}, errors.Join(billing.ErrProvider, errors.New("the local provider is not running"))
}
