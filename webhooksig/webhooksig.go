package webhooksig

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dealix/platform/internal/errs"
)

// Message is what a webhook scheme can sign: the request method, the URL the
// sender addressed, the headers and the raw body. Verifiers read only the
// parts their scheme covers.
type Message struct {
	// Method is the HTTP method, for example "POST". HubSpot v2 and v3 sign it.
	Method string
	// URL is the absolute URL as the sender addressed it, for example
	// "https://example.com/hooks/hubspot?x=1". HubSpot v2 and v3 sign it.
	URL string
	// Header holds the request headers.
	Header http.Header
	// Body is the raw request body, byte for byte as received.
	Body []byte
}

// Delivery describes a verified message.
type Delivery struct {
	// Verifier is the name of the verifier that accepted the message.
	Verifier string
	// ID identifies the delivery for the replay guard. It is always
	// covered by what the scheme authenticates, so a captured delivery
	// cannot be resent under another id: the signed webhook-id (Standard
	// Webhooks), the event's "id" in the signed body (Stripe), or, for
	// schemes without a signed id (GitHub, Slack, Calendly, HubSpot, a
	// Stripe event without "id"), "sig:" and the hex SHA-256 of the
	// verified signature, which is unique per signed content. Moyasar
	// signs nothing (see Moyasar.Verify): its id is the event's "id", or
	// "body:" and the hex SHA-256 of the body for an event without one.
	ID string
	// SenderID is the sender's own delivery id when the scheme does not
	// sign it (GitHub's X-GitHub-Delivery), for logs and support requests;
	// empty otherwise. The replay guard never keys on it.
	SenderID string
	// Timestamp is the signed timestamp; zero for schemes without one.
	Timestamp time.Time
}

// Verifier is the pure check of one webhook scheme. Verify reports whether m
// carries a valid signature under one of the verifier's secrets and, if so,
// what was delivered. It must not modify m and must be safe for concurrent
// use.
type Verifier interface {
	// Name identifies the verifier; the replay guard keys deliveries by it.
	Name() string
	// Verify checks m. Errors wrap one of the package's sentinel errors
	// inside an *Error.
	Verify(m *Message) (Delivery, error)
}

// Sentinel errors, one per failed check. Verify wraps them in *Error; use
// errors.Is to test for them.
var (
	// ErrMissingHeader means a header (or body field) the scheme needs is absent.
	ErrMissingHeader = errors.New("missing")
	// ErrMalformedHeader means a header (or body field) cannot be parsed,
	// or is duplicated.
	ErrMalformedHeader = errors.New("malformed")
	// ErrMalformedBody means the body is not what the scheme carries (for
	// example Moyasar's JSON object).
	ErrMalformedBody = errors.New("malformed body")
	// ErrBadSignature means no signature matched any active secret.
	ErrBadSignature = errors.New("signature does not match")
	// ErrStaleTimestamp means the signed timestamp is outside the tolerance,
	// too old or too far in the future.
	ErrStaleTimestamp = errors.New("timestamp outside tolerance")
	// ErrUnknownKey means the message is signed only with a scheme version
	// or key the verifier does not hold (for example Stripe "v0" alone or
	// a Standard Webhooks "v1a" signature).
	ErrUnknownKey = errors.New("no signature for a known key or version")
	// ErrBodyTooLarge means the body is longer than the middleware's limit.
	ErrBodyTooLarge = errors.New("body too large")
	// ErrReplayed means the delivery id was already seen inside its TTL.
	ErrReplayed = errors.New("delivery already received")
	// ErrInProgress means another request is processing the same delivery
	// right now; the middleware answers 409 Conflict with Retry-After.
	ErrInProgress = errors.New("delivery is being processed")
	// ErrInvalidConfig is returned by constructors for an unusable
	// configuration; the error wrapping it names the field. It is the same
	// value in every package of the library (errors.Is matches
	// tenancy.ErrInvalidConfig too).
	ErrInvalidConfig = errs.ErrInvalidConfig
	// ErrTenantMismatch is what the *tenancy.TenantMismatchError returned by
	// ReplayStore.ClaimTx matches with errors.Is. It is the same value in
	// every package of the library.
	ErrTenantMismatch = errs.ErrTenantMismatch
)

// Error is a failed check: which verifier, which field and which sentinel.
// Its text names the field and the check, never a secret, a received or an
// expected signature.
type Error struct {
	// Verifier is the name of the verifier that failed.
	Verifier string
	// Field is the header or body field the check concerns, for example
	// "Stripe-Signature".
	Field string
	// Err is one of the sentinel errors.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	return "webhooksig: " + e.Verifier + ": " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

func fail(verifier, field string, err error) error {
	return &Error{Verifier: verifier, Field: field, Err: err}
}

// StatusCode maps a verification error to its HTTP status: 400 for a
// missing or malformed header or body, 401 for a bad signature, a stale
// timestamp or an unknown key, 413 for an oversized body and 409 for a
// replayed delivery or one in progress. Any other error maps to 401, since the message was
// not shown to be authentic.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrMissingHeader), errors.Is(err, ErrMalformedHeader), errors.Is(err, ErrMalformedBody):
		return http.StatusBadRequest
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrReplayed), errors.Is(err, ErrInProgress):
		return http.StatusConflict
	default:
		return http.StatusUnauthorized
	}
}

// singleHeader returns the one value of header name: absent or empty is
// ErrMissingHeader, more than one value is ErrMalformedHeader, because a
// duplicated signature header is ambiguous.
func singleHeader(verifier string, h http.Header, name string) (string, error) {
	key, ok := canonicalHeaders[name]
	if !ok {
		key = http.CanonicalHeaderKey(name)
	}
	return singleHeaderKey(verifier, h, name, key)
}

// singleHeaderKey is singleHeader with name's canonical form given, for
// the verifiers on the hot path (one map lookup per header instead of two).
func singleHeaderKey(verifier string, h http.Header, name, key string) (string, error) {
	values := h[key]
	switch {
	case len(values) == 0 || (len(values) == 1 && values[0] == ""):
		return "", fail(verifier, name, ErrMissingHeader)
	case len(values) > 1:
		return "", fail(verifier, name, ErrMalformedHeader)
	}
	return values[0], nil
}

// Canonical forms of the header names the hot-path verifiers read.
var (
	keyStripeSignature   = http.CanonicalHeaderKey(StripeSignatureHeader)
	keyCalendlySignature = http.CanonicalHeaderKey(CalendlySignatureHeader)
	keyStandardID        = http.CanonicalHeaderKey(StandardIDHeader)
	keyStandardTimestamp = http.CanonicalHeaderKey(StandardTimestampHeader)
	keyStandardSignature = http.CanonicalHeaderKey(StandardSignatureHeader)
)

// canonicalHeaders maps the package's header names to their canonical
// form, so a lookup does not canonicalize (and allocate) on every request.
var canonicalHeaders = func() map[string]string {
	names := []string{
		GitHubSignatureHeader, GitHubDeliveryHeader, StripeSignatureHeader, CalendlySignatureHeader,
		StandardIDHeader, StandardTimestampHeader, StandardSignatureHeader, SlackSignatureHeader, SlackTimestampHeader,
		HubSpotSignatureV3Header, HubSpotTimestampHeader, HubSpotSignatureHeader, HubSpotVersionHeader,
	}
	m := make(map[string]string, len(names))
	for _, name := range names {
		m[name] = http.CanonicalHeaderKey(name)
	}
	return m
}()

// checkTimestamp rejects a timestamp more than tolerance before or after
// now. Sub saturates, so a timestamp centuries away is still refused.
func checkTimestamp(verifier, field string, now, ts time.Time, tolerance time.Duration) error {
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fail(verifier, field, ErrStaleTimestamp)
	}
	return nil
}

// anyEqual compares every candidate with every expected MAC in constant time
// per pair and reports the matching candidate, so the time taken does not
// reveal which secret or how many bytes matched.
func anyEqual(expected, candidates [][]byte) ([]byte, bool) {
	var match []byte
	for _, want := range expected {
		for _, got := range candidates {
			if hmac.Equal(want, got) && match == nil {
				match = got
			}
		}
	}
	return match, match != nil
}

// timing holds what every timestamped verifier shares.
type timing struct {
	now       func() time.Time
	tolerance time.Duration
}

func newTiming(now func() time.Time, tolerance, fallback time.Duration) (timing, error) {
	if tolerance < 0 {
		return timing{}, errs.Config("webhooksig", "tolerance must not be negative")
	}
	if tolerance == 0 {
		tolerance = fallback
	}
	if now == nil {
		now = systemClock.now
	}
	return timing{now: now, tolerance: tolerance}, nil
}

// systemClock is the verifiers' default clock.
var systemClock = &coarseClock{period: coarseClockPeriod}

// coarseClockPeriod is how often the default clock is read while
// verifiers use it, and so about how far behind time.Now it may be.
const coarseClockPeriod = 100 * time.Millisecond

// coarseClock is the wall clock read once per period instead of once per
// verification. A clock read is not only its own tens of nanoseconds: it
// orders the processor's work around it, and measured a few percent of a
// 1 KiB verification. The timestamps checked are whole seconds against a
// tolerance of minutes, so a reading up to a period old (plus however
// late the runtime fires the timer) changes nothing that matters.
//
// The clock runs only while it is used: the timer re-arms itself when
// the clock was read during the last period and stops otherwise; the
// next reading after a stop reads time.Now itself and starts it again. It
// is safe for concurrent use.
type coarseClock struct {
	period time.Duration
	nanos  atomic.Int64               // the last reading, Unix nanoseconds
	state  atomic.Int32               // one of the clock* states
	timer  atomic.Pointer[time.Timer] // made by the first start
}

const (
	clockStopped  = iota // no timer armed; nanos may be old
	clockUnused          // armed, nanos fresh, not read since the last tick
	clockUsed            // armed, nanos fresh, read since the last tick
	clockStarting        // a reader is starting the timer; nanos may be old
)

func (c *coarseClock) now() time.Time {
	for {
		switch c.state.Load() {
		case clockUsed:
			return time.Unix(0, c.nanos.Load())
		case clockUnused:
			if c.state.CompareAndSwap(clockUnused, clockUsed) {
				return time.Unix(0, c.nanos.Load())
			}
		case clockStarting:
			return time.Now()
		case clockStopped:
			if c.state.CompareAndSwap(clockStopped, clockStarting) {
				t := time.Now()
				c.nanos.Store(t.UnixNano())
				if t := c.timer.Load(); t != nil {
					t.Reset(c.period)
				} else {
					c.timer.Store(time.AfterFunc(c.period, c.tick))
				}
				c.state.Store(clockUsed)
				return t
			}
		}
	}
}

// tick refreshes the reading and re-arms the timer if the clock was read
// since the last tick; otherwise it stops. Only one tick runs at a time:
// each is armed by the previous one or by the start after a stop.
func (c *coarseClock) tick() {
	c.nanos.Store(time.Now().UnixNano())
	if c.state.CompareAndSwap(clockUsed, clockUnused) || !c.state.CompareAndSwap(clockUnused, clockStopped) {
		c.timer.Load().Reset(c.period)
	}
}

// stringSecrets validates and converts the active secrets of a verifier.
func stringSecrets(provider string, secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, errs.Config("webhooksig", "%s: at least one secret is required", provider)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return nil, errs.Config("webhooksig", "%s: empty secret", provider)
		}
		keys[i] = []byte(s)
	}
	return keys, nil
}
