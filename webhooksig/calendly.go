package webhooksig

import (
	"cmp"
	"time"
)

// CalendlySignatureHeader is the header Calendly signs with.
const CalendlySignatureHeader = "Calendly-Webhook-Signature"

// CalendlyConfig configures a Calendly verifier.
type CalendlyConfig struct {
	// Name is the verifier's name. Default "calendly".
	Name string
	// Secrets are the active webhook signing keys. Required.
	Secrets []string
	// Tolerance is how far the signed timestamp may lie from now, in either
	// direction. Default 3 minutes (the value in Calendly's documentation).
	Tolerance time.Duration
	// Now returns the current time. Default: the system's wall clock
	// (time.Now), read at most every 100 ms while the verifier is used.
	Now func() time.Time
}

// Calendly verifies Calendly's Calendly-Webhook-Signature header,
// "t=<unix>,v1=<hex>", the hex HMAC-SHA256 of "<t>.<body>".
type Calendly struct {
	name string
	keys *keyring
	timing
}

// NewCalendly returns a Calendly verifier, or an error wrapping ErrInvalidConfig.
func NewCalendly(cfg CalendlyConfig) (*Calendly, error) {
	keys, err := stringSecrets("calendly", cfg.Secrets)
	if err != nil {
		return nil, err
	}
	t, err := newTiming(cfg.Now, cfg.Tolerance, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	return &Calendly{name: cmp.Or(cfg.Name, "calendly"), keys: newKeyring(keys), timing: t}, nil
}

// Name implements Verifier.
func (c *Calendly) Name() string { return c.name }

// Verify implements Verifier. Calendly sends no delivery id; the id is the
// digest of the verified signature, unique per timestamp and body.
func (c *Calendly) Verify(m *Message) (Delivery, error) {
	var h tvHeader
	d, match, err := verifyTV(c.name, CalendlySignatureHeader, keyCalendlySignature, c.keys, c.timing, m, &h)
	if err != nil {
		return Delivery{}, err
	}
	d.ID = signatureID(h.signatures.at(match))
	return d, nil
}

// SignCalendly returns a Calendly-Webhook-Signature value for body at t.
func SignCalendly(secret string, t time.Time, body []byte) string {
	return signTV(t, body, []string{secret})
}
