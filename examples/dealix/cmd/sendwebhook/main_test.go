package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/webhooksig"
)

// TestSamplesVerify sends each sample to a server that verifies it as the
// reference server does, with the development secrets.
func TestSamplesVerify(t *testing.T) {
	t.Setenv("DEALIX_HUBSPOT_CLIENT_SECRET", "")
	t.Setenv("DEALIX_CALENDLY_SIGNING_KEY", "")
	t.Setenv("DEALIX_MOYASAR_WEBHOOK_TOKEN", "")
	hubspot, _ := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{intake.DevHubSpotSecret}})
	calendly, _ := webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: []string{intake.DevCalendlySecret}})
	moyasar, _ := webhooksig.NewMoyasar(webhooksig.MoyasarConfig{Tokens: []string{billing.DevWebhookToken}})
	cfg := webhooksig.Config{URL: intake.SignedURL("")}
	got := map[string]string{}
	ok := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got[name] = string(b)
		})
	}
	mux := http.NewServeMux()
	for _, m := range []struct {
		path string
		v    webhooksig.Verifier
	}{{"/webhooks/hubspot/{tenant}", hubspot}, {"/webhooks/calendly/{tenant}", calendly}, {"/webhooks/moyasar", moyasar}} {
		mw, err := webhooksig.New(m.v, cfg)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle("POST "+m.path, mw.Handler(ok(m.v.Name())))
	}
	ts := httptest.NewServer(mux)
	defer ts.Close()

	for _, args := range [][]string{
		{"hubspot", "-url", ts.URL, "-email", "a@example.com"},
		{"calendly", "-url", ts.URL, "-canceled"},
		{"moyasar", "-url", ts.URL, "-invoice", "inv_1"},
	} {
		if err := run(args, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if !strings.Contains(got["hubspot"], "a@example.com") || !strings.Contains(got["calendly"], "invitee.canceled") ||
		!strings.Contains(got["moyasar"], `"invoice_id":"inv_1"`) {
		t.Fatalf("received %v", got)
	}

	// A wrong secret is refused by the server, and reported.
	t.Setenv("DEALIX_CALENDLY_SIGNING_KEY", "other")
	if err := run([]string{"calendly", "-url", ts.URL}, io.Discard); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestRefusesOtherHosts(t *testing.T) {
	for _, u := range []string{"http://example.com", "http://10.0.0.1:8080", "ftp://127.0.0.1", "127.0.0.1:8080"} {
		if err := run([]string{"hubspot", "-url", u}, io.Discard); err == nil || !strings.Contains(err.Error(), "-url") {
			t.Fatalf("%s: %v", u, err)
		}
	}
}
