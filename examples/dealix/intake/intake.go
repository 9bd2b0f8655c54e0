package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/webhooksig"
)

// Job kinds on the webhooks queue.
const (
	KindHubSpotContact  = "hubspot.contact"
	KindCalendlyInvitee = "calendly.invitee"
)

// HubSpot subscription types that upsert a lead.
const (
	HubSpotContactCreation       = "contact.creation"
	HubSpotContactPropertyChange = "contact.propertyChange"
)

// Calendly events that book or cancel a meeting.
const (
	CalendlyInviteeCreated  = "invitee.created"
	CalendlyInviteeCanceled = "invitee.canceled"
)

// ErrHandlerSwitchedOff is the failure of HubSpot jobs while
// Service.FailHubSpot is on, or Service.FailHubSpotFor for their contact.
var ErrHandlerSwitchedOff = errors.New("intake: the HubSpot handler is switched to fail")

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func itoa(n int) string { return strconv.Itoa(n) }

// Service receives the intake webhooks and runs their jobs.
type Service struct {
	// DB is the app role's pool: the webhooks' claims and jobs, and the
	// workers' effects, all run in transactions scoped to the tenant.
	DB tenancy.Beginner
	// Jobs enqueues on the app role.
	Jobs *dlq.Client
	// Replay remembers deliveries.
	Replay *webhooksig.ReplayStore
	// Queue is the queue the jobs go to ("webhooks").
	Queue string
	// Log receives the workers' notes and server-side failures.
	Log *slog.Logger

	maxAttempts atomic.Int32
	failHubSpot atomic.Bool

	mu     sync.Mutex
	probes map[string]probe // by cleaned email
}

// probe is the fault set on one contact's HubSpot deliveries.
type probe struct {
	fail     bool // its jobs fail every attempt
	attempts int  // its jobs' attempts (0: the service's)
}

// SetMaxAttempts sets the attempts of the jobs enqueued from now on; 0
// means the queue client's default (10).
func (s *Service) SetMaxAttempts(n int) { s.maxAttempts.Store(int32(n)) }

// FailHubSpot switches the HubSpot job handler to fail every attempt
// (true) or back to normal (false): the fault the dead-letter path is
// shown and tested with. Off by default.
func (s *Service) FailHubSpot(on bool) { s.failHubSpot.Store(on) }

// FailHubSpotFor switches the HubSpot job handler to fail every attempt
// (true) or back to normal (false) for the jobs of one contact, named by
// email (compared as the worker cleans it: trimmed, lower-cased); jobs of
// every other contact run as usual. It is the fault a live check injects
// on a running server, where FailHubSpot would also fail the real
// deliveries arriving meanwhile. Switching it off also lifts the
// contact's HubSpotAttemptsFor limit. An email the worker would not
// accept is ignored.
func (s *Service) FailHubSpotFor(email string, on bool) {
	s.setProbe(email, func(p *probe) {
		p.fail = on
		if !on {
			p.attempts = 0
		}
	})
}

// HubSpotAttemptsFor sets the attempts of the HubSpot jobs enqueued from
// now on for one contact, named by email as in FailHubSpotFor; n <= 0
// lifts the limit (the service's SetMaxAttempts applies again). A check
// sets 1 so that its failing delivery is dead at its first attempt
// instead of after the queue's backoff, without changing the attempts of
// any other delivery.
func (s *Service) HubSpotAttemptsFor(email string, n int) {
	s.setProbe(email, func(p *probe) { p.attempts = max(n, 0) })
}

// HubSpotFaults returns how many contacts carry a fault or an attempts
// limit set by FailHubSpotFor or HubSpotAttemptsFor.
func (s *Service) HubSpotFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.probes)
}

func (s *Service) setProbe(email string, set func(*probe)) {
	email, ok := cleanEmail(email)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.probes[email]
	set(&p)
	if p == (probe{}) {
		delete(s.probes, email)
		return
	}
	if s.probes == nil {
		s.probes = map[string]probe{}
	}
	s.probes[email] = p
}

// probeFor returns the fault set on the contact with the event's email.
func (s *Service) probeFor(props map[string]string) probe {
	email, ok := cleanEmail(props["email"])
	if !ok {
		return probe{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes[email]
}

// tenantRoute reads the {tenant} path value: the webhooks are mounted per
// tenant (/webhooks/hubspot/{tenant}); a value that is not a UUID names no
// route, 404, before any signature is checked.
func tenantRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, err := tenancy.WithTenant(r.Context(), r.PathValue("tenant"))
		if err != nil {
			httpx.Fail(w, r, discard, httpx.Errorf(http.StatusNotFound, "no such webhook route"))
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Route wraps a webhook handler for a per-tenant route: the tenant path
// value is checked first, then mw verifies the signature.
func Route(mw *webhooksig.Middleware, h http.Handler) http.Handler { return tenantRoute(mw.Handler(h)) }

// delivery returns the verified delivery with the verifier named per
// tenant, so that one tenant's deliveries never meet another's in the
// replay store.
func delivery(r *http.Request) (webhooksig.Delivery, string, error) {
	d, ok := webhooksig.DeliveryFromContext(r.Context())
	tenant, ok2 := tenancy.TenantFrom(r.Context())
	if !ok || !ok2 {
		return d, "", errors.New("intake: webhook mounted without its verifier or tenant route")
	}
	d.Verifier += ":" + tenant
	return d, tenant, nil
}

func (s *Service) params(kind, dedup string, payload any) dlq.JobParams {
	return dlq.JobParams{Queue: s.Queue, Kind: kind, Payload: payload, DedupKey: dedup, MaxAttempts: int(s.maxAttempts.Load())}
}

// HubSpotEvent is one event of a HubSpot webhook request (a request
// carries a JSON array of them). HubSpot's own events name the contact
// (objectId) and, for a property change, the one property; Properties,
// when present, carries the contact's properties (email, firstname,
// lastname, company) as a CRM read returns them — a production
// integration reads them from HubSpot's CRM API in the worker.
type HubSpotEvent struct {
	EventID          int64             `json:"eventId"`
	SubscriptionID   int64             `json:"subscriptionId"`
	PortalID         int64             `json:"portalId"`
	AppID            int64             `json:"appId"`
	OccurredAt       int64             `json:"occurredAt"`
	SubscriptionType string            `json:"subscriptionType"`
	AttemptNumber    int               `json:"attemptNumber"`
	ObjectID         int64             `json:"objectId"`
	ChangeSource     string            `json:"changeSource,omitempty"`
	PropertyName     string            `json:"propertyName,omitempty"`
	PropertyValue    string            `json:"propertyValue,omitempty"`
	Properties       map[string]string `json:"properties,omitempty"`
}

// HubSpotWebhook handles POST /webhooks/hubspot/{tenant}, behind Route
// with the HubSpot v3 verifier: each contact.creation or
// contact.propertyChange event becomes one job; other events are
// acknowledged and dropped.
func (s *Service) HubSpotWebhook(w http.ResponseWriter, r *http.Request) {
	d, _, err := delivery(r)
	if err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	var events []HubSpotEvent
	if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
		httpx.Fail(w, r, s.Log, httpx.Errorf(http.StatusBadRequest, "the body is not an array of HubSpot events"))
		return
	}
	var params []dlq.JobParams
	for _, ev := range events {
		if ev.SubscriptionType != HubSpotContactCreation && ev.SubscriptionType != HubSpotContactPropertyChange {
			continue
		}
		p := s.params(KindHubSpotContact, fmt.Sprintf("hubspot:%d:%d", ev.PortalID, ev.EventID), ev)
		if n := s.probeFor(contactProperties(ev)).attempts; n > 0 {
			p.MaxAttempts = n
		}
		params = append(params, p)
	}
	out, retryAfter, err := Ingest(r.Context(), s.DB, s.Jobs, s.Replay, d, params...)
	respond(w, r, s.Log, out, retryAfter, err)
}

// HubSpotWorker returns the handler of hubspot.contact jobs: the contact's
// lead is upserted by email — the tenant's lead with the address is
// updated, or a lead of source "hubspot" is created.
func (s *Service) HubSpotWorker() dlq.Handler {
	return dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
		if s.failHubSpot.Load() {
			return ErrHandlerSwitchedOff
		}
		var ev HubSpotEvent
		if err := json.Unmarshal(job.Payload, &ev); err != nil {
			return dlq.Discard(fmt.Errorf("hubspot event: %w", err))
		}
		props := contactProperties(ev)
		if s.probeFor(props).fail {
			return ErrHandlerSwitchedOff
		}
		email, ok := cleanEmail(props["email"])
		if !ok {
			s.Log.InfoContext(ctx, "hubspot event without a usable email; nothing to upsert", "event", ev.EventID, "object", ev.ObjectID)
			return nil
		}
		name := strings.TrimSpace(props["firstname"] + " " + props["lastname"])
		return tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
			_, err := upsertLead(ctx, tx, job.Tenant, "hubspot", email, name, props["company"])
			return err
		})
	})
}

// contactProperties are the contact's properties an event carries, the
// changed property included.
func contactProperties(ev HubSpotEvent) map[string]string {
	props := make(map[string]string, len(ev.Properties)+1)
	for k, v := range ev.Properties {
		props[k] = v
	}
	if ev.PropertyName != "" {
		props[ev.PropertyName] = ev.PropertyValue
	}
	return props
}

// cleanEmail lower-cases and checks an address.
func cleanEmail(v string) (string, bool) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || len(v) > 320 || pgtext.CheckText(v) != nil {
		return "", false
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v {
		return "", false
	}
	return v, true
}

// optional is nil for an empty string (keep the stored value).
func optional(v string, limit int) *string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	v = pgtext.Clean(v, limit)
	return &v
}

// findLead returns the tenant's lead with email, locked for update: an
// intake lead first, else the oldest lead with the address; "" when none.
func findLead(ctx context.Context, tx pgx.Tx, email string) (string, error) {
	var id string
	err := tx.QueryRow(ctx, `SELECT id::text FROM dealix.leads WHERE tenant_id = $2 AND email = $1
		ORDER BY (source IN ('hubspot', 'calendly')) DESC NULLS LAST, created_at LIMIT 1 FOR UPDATE`, email, httpx.TenantOf(ctx)).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// changedSQL is true when an update of name ($2) and company ($3), where a
// NULL keeps the stored value, changes the row: only then are its version
// and updated_at bumped, so a repeated event leaves the lead as it was.
const changedSQL = `(name, company) IS DISTINCT FROM (coalesce($2, name), coalesce($3, company))`

// upsertLead updates the lead the tenant already has for email (findLead),
// or inserts an intake lead for it, and returns its id. Name and company
// not given keep the stored values. Two jobs inserting the same new
// address meet on the partial unique index of intake leads (migration 001
// of this package): one inserts, the other updates.
func upsertLead(ctx context.Context, tx pgx.Tx, tenant, source, email, name, company string) (string, error) {
	n, c := optional(name, 200), optional(company, 200)
	id, err := findLead(ctx, tx, email)
	if err != nil {
		return "", err
	}
	if id != "" {
		_, err := tx.Exec(ctx, `UPDATE dealix.leads SET name = coalesce($2, name), company = coalesce($3, company),
			version = version + 1, updated_at = now() WHERE tenant_id = $4 AND id = $1 AND `+changedSQL, id, n, c, tenant)
		return id, err
	}
	err = tx.QueryRow(ctx, `INSERT INTO dealix.leads AS l (tenant_id, name, email, company, source)
		VALUES ($5, coalesce($2, $1), $1, $3, $4)
		ON CONFLICT (tenant_id, email) WHERE source IN ('hubspot', 'calendly')
		DO UPDATE SET name = coalesce($2, l.name), company = coalesce($3, l.company), version = l.version + 1, updated_at = now()
		RETURNING id::text`, email, n, c, source, tenant).Scan(&id)
	return id, err
}

// CalendlyEvent is a Calendly webhook body (invitee.created and
// invitee.canceled). Unknown members are ignored.
type CalendlyEvent struct {
	Event     string          `json:"event"`
	CreatedAt time.Time       `json:"created_at"`
	CreatedBy string          `json:"created_by,omitempty"`
	Payload   CalendlyInvitee `json:"payload"`
}

// CalendlyInvitee is the invitee an event is about.
type CalendlyInvitee struct {
	URI            string                 `json:"uri"`
	Email          string                 `json:"email"`
	Name           string                 `json:"name"`
	Status         string                 `json:"status"`
	Event          string                 `json:"event"`
	ScheduledEvent CalendlyScheduledEvent `json:"scheduled_event"`
	Cancellation   *CalendlyCancellation  `json:"cancellation,omitempty"`
}

// CalendlyScheduledEvent is the meeting.
type CalendlyScheduledEvent struct {
	URI       string     `json:"uri"`
	Name      string     `json:"name"`
	StartTime *time.Time `json:"start_time"`
	EndTime   *time.Time `json:"end_time"`
}

// CalendlyCancellation says who canceled and why.
type CalendlyCancellation struct {
	CanceledBy string `json:"canceled_by"`
	Reason     string `json:"reason"`
}

// CalendlyWebhook handles POST /webhooks/calendly/{tenant}, behind Route
// with the Calendly verifier: invitee.created and invitee.canceled become
// one job each; other events are acknowledged and dropped.
func (s *Service) CalendlyWebhook(w http.ResponseWriter, r *http.Request) {
	d, _, err := delivery(r)
	if err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	var ev CalendlyEvent
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		httpx.Fail(w, r, s.Log, httpx.Errorf(http.StatusBadRequest, "the body is not a Calendly event"))
		return
	}
	var params []dlq.JobParams
	if ev.Event == CalendlyInviteeCreated || ev.Event == CalendlyInviteeCanceled {
		// Calendly signs each retry anew (a new delivery id), so the job's
		// dedup key is the event itself: its type and the invitee.
		sum := sha256.Sum256([]byte(ev.Event + "\n" + ev.Payload.URI))
		params = append(params, s.params(KindCalendlyInvitee, "calendly:"+hex.EncodeToString(sum[:]), ev))
	}
	out, retryAfter, err := Ingest(r.Context(), s.DB, s.Jobs, s.Replay, d, params...)
	respond(w, r, s.Log, out, retryAfter, err)
}

// CalendlyWorker returns the handler of calendly.invitee jobs: the
// invitee's lead is found by email (an intake lead first, then any lead
// with the address) or created, and the meeting, keyed by the invitee's
// URI, is booked or canceled. A cancellation is final: a created event
// arriving after it (out of order) does not book the meeting again.
func (s *Service) CalendlyWorker() dlq.Handler {
	return dlq.HandlerFunc(func(ctx context.Context, job *dlq.Job) error {
		var ev CalendlyEvent
		if err := json.Unmarshal(job.Payload, &ev); err != nil {
			return dlq.Discard(fmt.Errorf("calendly event: %w", err))
		}
		p := ev.Payload
		email, ok := cleanEmail(p.Email)
		if !ok || p.URI == "" || len(p.URI) > 500 || pgtext.CheckText(p.URI) != nil {
			return dlq.Discard(fmt.Errorf("calendly event: the invitee has no usable email or uri"))
		}
		eventURI := p.ScheduledEvent.URI
		if eventURI == "" {
			eventURI = p.Event
		}
		return tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
			leadID, err := findLead(ctx, tx, email)
			if err == nil && leadID == "" {
				leadID, err = upsertLead(ctx, tx, job.Tenant, "calendly", email, p.Name, "")
			}
			if err != nil {
				return err
			}
			name, reason := optional(p.Name, 200), (*string)(nil)
			if p.Cancellation != nil {
				reason = optional(p.Cancellation.Reason, 1000)
			}
			if ev.Event == CalendlyInviteeCanceled {
				_, err = tx.Exec(ctx, `INSERT INTO dealix.meetings (tenant_id, id, lead_id, invitee_uri, event_uri, name, email, status, start_time, end_time, cancel_reason, canceled_at)
					VALUES ($10, $1, $2, $3, $4, $5, $6, 'canceled', $7, $8, $9, now())
					ON CONFLICT (tenant_id, invitee_uri) DO UPDATE SET status = 'canceled', cancel_reason = EXCLUDED.cancel_reason,
						canceled_at = coalesce(meetings.canceled_at, now()), updated_at = now()`,
					uuid.New(), leadID, p.URI, optional(eventURI, 500), name, email, p.ScheduledEvent.StartTime, p.ScheduledEvent.EndTime, reason, job.Tenant)
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO dealix.meetings (tenant_id, id, lead_id, invitee_uri, event_uri, name, email, status, start_time, end_time, booked_at)
				VALUES ($9, $1, $2, $3, $4, $5, $6, 'booked', $7, $8, now())
				ON CONFLICT (tenant_id, invitee_uri) DO UPDATE SET start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
					booked_at = coalesce(meetings.booked_at, now()), updated_at = now()`,
				uuid.New(), leadID, p.URI, optional(eventURI, 500), name, email, p.ScheduledEvent.StartTime, p.ScheduledEvent.EndTime, job.Tenant)
			return err
		})
	})
}

// Development secrets: the defaults of the server's webhook settings, and
// what the sendwebhook command signs with. Never use them in production.
const (
	// DevHubSpotSecret is the HubSpot app's client secret
	// (DEALIX_HUBSPOT_CLIENT_SECRET's default).
	DevHubSpotSecret = "dealix-dev-hubspot-client-secret"
	// DevCalendlySecret is the Calendly webhook signing key
	// (DEALIX_CALENDLY_SIGNING_KEY's default).
	DevCalendlySecret = "dealix-dev-calendly-signing-key"
)
