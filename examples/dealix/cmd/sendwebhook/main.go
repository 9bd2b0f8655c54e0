// Command sendwebhook sends a correctly signed sample webhook to a running
// Dealix reference server on this machine: a HubSpot contact, a Calendly
// booking or cancellation, or a Moyasar payment. It signs with the same
// secrets the server reads (DEALIX_HUBSPOT_CLIENT_SECRET,
// DEALIX_CALENDLY_SIGNING_KEY, DEALIX_MOYASAR_WEBHOOK_TOKEN), falling back
// to the development defaults, and refuses any address but loopback.
//
//	go run ./examples/dealix/cmd/sendwebhook hubspot -email sara@example.com
//	go run ./examples/dealix/cmd/sendwebhook calendly -email sara@example.com
//	go run ./examples/dealix/cmd/sendwebhook calendly -email sara@example.com -canceled
//	go run ./examples/dealix/cmd/sendwebhook moyasar -invoice <provider_invoice_id> -amount 149900
//
// The tenant defaults to the demo tenant; -url to http://127.0.0.1:8080.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/webhooksig"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sendwebhook:", err)
		os.Exit(1)
	}
}

const usage = `usage: sendwebhook hubspot|calendly|moyasar [flags]

  hubspot   a contact.creation event (or -update: contact.propertyChange)
  calendly  an invitee.created event (or -canceled: invitee.canceled)
  moyasar   a payment_paid event (or -failed: payment_failed) for -invoice

flags:
`

func run(args []string, out io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("name a provider: hubspot, calendly or moyasar")
	}
	provider := args[0]
	fs := flag.NewFlagSet("sendwebhook "+provider, flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "the server's base URL (loopback only)")
	tenant := fs.String("tenant", server.DemoTenantID, "the tenant whose webhook route is called (hubspot, calendly) or whose invoice is paid (moyasar)")
	email := fs.String("email", "sara@example.com", "the contact's or invitee's email (hubspot, calendly)")
	name := fs.String("name", "Sara Al-Mutairi", "the contact's or invitee's name (hubspot, calendly)")
	company := fs.String("company", "Riyadh Foods", "the contact's company (hubspot)")
	update := fs.Bool("update", false, "hubspot: send contact.propertyChange instead of contact.creation")
	canceled := fs.Bool("canceled", false, "calendly: send invitee.canceled instead of invitee.created")
	invitee := fs.String("invitee", "", "calendly: the invitee URI (default: one derived from -email)")
	invoice := fs.String("invoice", "", "moyasar: the provider's invoice id (provider_invoice_id of the checkout's answer)")
	amount := fs.Int64("amount", 149900, "moyasar: the amount paid, in halalas")
	currency := fs.String("currency", "SAR", "moyasar: the currency")
	failed := fs.Bool("failed", false, "moyasar: send payment_failed instead of payment_paid")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := checkLoopback(*base); err != nil {
		return err
	}
	target := strings.TrimRight(*base, "/")
	now := time.Now()
	var body []byte
	header := http.Header{"Content-Type": {"application/json"}}

	switch provider {
	case "hubspot":
		first, last, _ := strings.Cut(*name, " ")
		kind := intake.HubSpotContactCreation
		if *update {
			kind = intake.HubSpotContactPropertyChange
		}
		ev := intake.HubSpotEvent{
			EventID: now.UnixNano() % 1e12, SubscriptionID: 1, PortalID: 4242, AppID: 1, OccurredAt: now.UnixMilli(),
			SubscriptionType: kind, ObjectID: int64(len(*email)) * 1000, ChangeSource: "CRM",
			Properties: map[string]string{"email": *email, "firstname": first, "lastname": last, "company": *company},
		}
		body, _ = json.Marshal([]intake.HubSpotEvent{ev})
		target += "/webhooks/hubspot/" + *tenant
		ts, sig := webhooksig.SignHubSpotV3(secret("DEALIX_HUBSPOT_CLIENT_SECRET", intake.DevHubSpotSecret), http.MethodPost, target, body, now)
		header.Set(webhooksig.HubSpotTimestampHeader, ts)
		header.Set(webhooksig.HubSpotSignatureV3Header, sig)
	case "calendly":
		uri := *invitee
		if uri == "" {
			uri = "https://api.calendly.com/scheduled_events/DEV/invitees/" + uuid.NewSHA1(uuid.NameSpaceURL, []byte(*email)).String()
		}
		start := now.Add(24 * time.Hour).Truncate(time.Hour)
		end := start.Add(30 * time.Minute)
		ev := intake.CalendlyEvent{Event: intake.CalendlyInviteeCreated, CreatedAt: now.UTC(), Payload: intake.CalendlyInvitee{
			URI: uri, Email: *email, Name: *name, Status: "active", Event: "https://api.calendly.com/scheduled_events/DEV",
			ScheduledEvent: intake.CalendlyScheduledEvent{URI: "https://api.calendly.com/scheduled_events/DEV", Name: "Intro call", StartTime: &start, EndTime: &end},
		}}
		if *canceled {
			ev.Event, ev.Payload.Status = intake.CalendlyInviteeCanceled, "canceled"
			ev.Payload.Cancellation = &intake.CalendlyCancellation{CanceledBy: *name, Reason: "sent by sendwebhook"}
		}
		body, _ = json.Marshal(ev)
		target += "/webhooks/calendly/" + *tenant
		header.Set(webhooksig.CalendlySignatureHeader, webhooksig.SignCalendly(secret("DEALIX_CALENDLY_SIGNING_KEY", intake.DevCalendlySecret), now, body))
	case "moyasar":
		if *invoice == "" {
			return errors.New("moyasar: -invoice is required: the provider_invoice_id of POST /api/v1/checkout's answer")
		}
		ev := billing.Event{ID: uuid.NewString(), Type: billing.EventPaymentPaid, CreatedAt: now.UTC(), AccountName: "dealix-dev",
			Data: billing.Payment{ID: uuid.NewString(), Status: "paid", Amount: *amount, Currency: *currency, InvoiceID: *invoice,
				Metadata: map[string]string{billing.MetaTenant: *tenant}, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}}
		if *failed {
			ev.Type, ev.Data.Status = billing.EventPaymentFailed, "failed"
		}
		token := secret("DEALIX_MOYASAR_WEBHOOK_TOKEN", billing.DevWebhookToken)
		var err error
		if body, err = webhooksig.SignMoyasar(token, billing.EventBody(ev)); err != nil {
			return err
		}
		target += "/webhooks/moyasar"
	default:
		return fmt.Errorf("unknown provider %q: hubspot, calendly or moyasar", provider)
	}

	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(out, "POST %s -> %s\n%s\n", target, resp.Status, bytes.TrimSpace(answer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the server answered %s", resp.Status)
	}
	return nil
}

// secret is the first of the comma-separated secrets in the variable, or
// the development default.
func secret(env, dev string) string {
	for _, s := range strings.Split(os.Getenv(env), ",") {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return dev
}

// checkLoopback refuses any server but one on this machine: the samples
// carry the signing secrets' work.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-url %q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q is not a loopback address; sendwebhook only sends to this machine", raw)
}
