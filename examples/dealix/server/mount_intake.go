package server

import (
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/webhooksig"
)

// intakeConfig is the intake webhooks' configuration, read from the
// environment:
//
//	DEALIX_HUBSPOT_CLIENT_SECRET   HubSpot app client secret(s), comma-separated for rotation;
//	                               default intake.DevHubSpotSecret
//	DEALIX_CALENDLY_SIGNING_KEY    Calendly webhook signing key(s), comma-separated;
//	                               default intake.DevCalendlySecret
//	DEALIX_PUBLIC_URL              the server's URL as providers address it (HubSpot signs it);
//	                               default: the connection's scheme and the Host header
//	DEALIX_WEBHOOK_MAX_ATTEMPTS    attempts of an intake job before it is dead; default 10
type intakeConfig struct {
	hubspotSecrets, calendlySecrets []string
	publicURL                       string
	maxAttempts                     int
	devSecrets                      bool
}

func loadIntakeConfig(getenv func(string) string) intakeConfig {
	c := intakeConfig{publicURL: strings.TrimSpace(getenv("DEALIX_PUBLIC_URL"))}
	c.hubspotSecrets = splitSecrets(getenv("DEALIX_HUBSPOT_CLIENT_SECRET"))
	c.calendlySecrets = splitSecrets(getenv("DEALIX_CALENDLY_SIGNING_KEY"))
	if c.hubspotSecrets == nil {
		c.hubspotSecrets, c.devSecrets = []string{intake.DevHubSpotSecret}, true
	}
	if c.calendlySecrets == nil {
		c.calendlySecrets, c.devSecrets = []string{intake.DevCalendlySecret}, true
	}
	if n, err := strconv.Atoi(strings.TrimSpace(getenv("DEALIX_WEBHOOK_MAX_ATTEMPTS"))); err == nil && n > 0 {
		c.maxAttempts = n
	}
	return c
}

func splitSecrets(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// mountIntake registers the HubSpot and Calendly webhooks (per tenant,
// public: the signature authenticates them) and their job handlers on the
// webhooks queue, and the replay store's sweeper.
func (srv *Server) mountIntake(mux *http.ServeMux, svc *services) {
	log := srv.cfg.Logger
	ic := loadIntakeConfig(os.Getenv)
	if ic.devSecrets {
		log.Warn("intake: DEALIX_HUBSPOT_CLIENT_SECRET or DEALIX_CALENDLY_SIGNING_KEY not set; the development secrets verify webhooks")
	}
	replay, err := webhooksig.NewReplayStore(srv.db.app, webhooksig.ReplayStoreConfig{})
	must(err)
	s := &intake.Service{DB: srv.db.app, Jobs: srv.platform.Jobs, Replay: replay, Queue: QueueWebhooks, Log: log}
	s.SetMaxAttempts(ic.maxAttempts)

	hubspot, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: ic.hubspotSecrets})
	must(err)
	calendly, err := webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: ic.calendlySecrets})
	must(err)
	// No replay guard in the middleware: Ingest claims the delivery in the
	// transaction that enqueues its jobs.
	wcfg := webhooksig.Config{MaxBodyBytes: srv.cfg.MaxBodyBytes, URL: intake.SignedURL(ic.publicURL), Logger: log}
	hmw, err := webhooksig.New(hubspot, wcfg)
	must(err)
	cmw, err := webhooksig.New(calendly, wcfg)
	must(err)
	mux.Handle("POST /webhooks/hubspot/{tenant}", intake.Route(hmw, http.HandlerFunc(s.HubSpotWebhook)))
	mux.Handle("POST /webhooks/calendly/{tenant}", intake.Route(cmw, http.HandlerFunc(s.CalendlyWebhook)))
	srv.platform.Handle(QueueWebhooks, intake.KindHubSpotContact, s.HubSpotWorker())
	srv.platform.Handle(QueueWebhooks, intake.KindCalendlyInvitee, s.CalendlyWorker())

	sweeper, err := webhooksig.NewSweeper(srv.db.system, webhooksig.SweeperConfig{Logger: log})
	must(err)
	svc.sweepers = append(svc.sweepers, sweeper.Run)
	srv.intake = s
}

// must panics on a configuration error of a mount function: the values
// are fixed at this point (the secrets are never empty), so an error is a
// programming mistake, not a user's.
func must(err error) {
	if err != nil {
		panic("server: " + err.Error())
	}
}

// Intake is the intake webhooks' service (nil before New returns): tests
// and operators switch its HubSpot handler's fault and its jobs' attempts.
func (srv *Server) Intake() *intake.Service { return srv.intake }

// PaymentFake is the local payment provider the server runs when no
// DEALIX_MOYASAR_API_URL is set; nil otherwise.
func (srv *Server) PaymentFake() *billing.Fake { return srv.paymentFake }
