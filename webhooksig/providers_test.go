package webhooksig_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/webhooksig"
)

const hookURL = "https://hooks.example.com/webhooks/in?src=a%3Ab"

// scheme describes one provider for the shared checks below.
type scheme struct {
	name string
	// newVerifier builds the verifier with secrets and a clock.
	newVerifier func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier
	// sign returns the headers of body signed with secret at at.
	sign func(t *testing.T, secret string, at time.Time, body []byte) http.Header
	// headers are the signed headers, each required.
	headers []string
	// tolerance is the default tolerance; zero for schemes without a timestamp.
	tolerance time.Duration
	// secrets are two valid secrets of the scheme's form.
	secrets [2]string
}

func schemes() []scheme {
	return []scheme{
		{
			name: "github", headers: []string{"X-Hub-Signature-256"}, secrets: [2]string{"old-secret", "new-secret"},
			newVerifier: func(t *testing.T, _ func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: secrets})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, _ time.Time, body []byte) http.Header {
				return http.Header{"X-Hub-Signature-256": {webhooksig.SignGitHub(secret, body)}, "X-Github-Delivery": {"d-1"}}
			},
		},
		{
			name: "stripe", headers: []string{"Stripe-Signature"}, tolerance: 300 * time.Second,
			secrets: [2]string{"whsec_old", "whsec_new"},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: secrets, Now: now})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, at time.Time, body []byte) http.Header {
				return http.Header{"Stripe-Signature": {webhooksig.SignStripe(at, body, secret)}}
			},
		},
		{
			name: "standard-webhooks", headers: []string{"webhook-id", "webhook-timestamp", "webhook-signature"},
			tolerance: 5 * time.Minute,
			secrets:   [2]string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("old key bytes")), "whsec_" + base64.StdEncoding.EncodeToString([]byte("new key bytes"))},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: secrets, Now: now})
				require.NoError(t, err)
				return v
			},
			sign: func(t *testing.T, secret string, at time.Time, body []byte) http.Header {
				sig, err := webhooksig.SignStandard("msg_1", at, body, secret)
				require.NoError(t, err)
				h := http.Header{}
				h.Set("webhook-id", "msg_1")
				h.Set("webhook-timestamp", formatUnix(at))
				h.Set("webhook-signature", sig)
				return h
			},
		},
		{
			name: "slack", headers: []string{"X-Slack-Request-Timestamp", "X-Slack-Signature"}, tolerance: 5 * time.Minute,
			secrets: [2]string{"old-signing-secret", "new-signing-secret"},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewSlack(webhooksig.SlackConfig{Secrets: secrets, Now: now})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, at time.Time, body []byte) http.Header {
				ts, sig := webhooksig.SignSlack(secret, at, body)
				return http.Header{"X-Slack-Request-Timestamp": {ts}, "X-Slack-Signature": {sig}}
			},
		},
		{
			name: "calendly", headers: []string{"Calendly-Webhook-Signature"}, tolerance: 3 * time.Minute,
			secrets: [2]string{"old-signing-key", "new-signing-key"},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: secrets, Now: now})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, at time.Time, body []byte) http.Header {
				return http.Header{"Calendly-Webhook-Signature": {webhooksig.SignCalendly(secret, at, body)}}
			},
		},
		{
			name: "hubspot-v3", headers: []string{"X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"}, tolerance: 5 * time.Minute,
			secrets: [2]string{"old-client-secret", "new-client-secret"},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: secrets, Now: now})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, at time.Time, body []byte) http.Header {
				ts, sig := webhooksig.SignHubSpotV3(secret, "POST", hookURL, body, at)
				h := http.Header{}
				h.Set("X-HubSpot-Request-Timestamp", ts)
				h.Set("X-HubSpot-Signature-v3", sig)
				return h
			},
		},
		{
			name: "hubspot-v2", headers: []string{"X-HubSpot-Signature", "X-HubSpot-Signature-Version"},
			secrets: [2]string{"old-client-secret", "new-client-secret"},
			newVerifier: func(t *testing.T, now func() time.Time, secrets ...string) webhooksig.Verifier {
				v, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: secrets, Now: now, Legacy: true})
				require.NoError(t, err)
				return v
			},
			sign: func(_ *testing.T, secret string, _ time.Time, body []byte) http.Header {
				h := http.Header{}
				h.Set("X-HubSpot-Signature", webhooksig.SignHubSpotV2(secret, "POST", hookURL, body))
				h.Set("X-HubSpot-Signature-Version", "v2")
				return h
			},
		},
	}
}

// knownHeaders are every header a scheme reads, and the ids senders send.
var knownHeaders = []string{
	webhooksig.GitHubSignatureHeader, webhooksig.GitHubDeliveryHeader, webhooksig.StripeSignatureHeader,
	webhooksig.CalendlySignatureHeader, webhooksig.StandardIDHeader, webhooksig.StandardTimestampHeader,
	webhooksig.StandardSignatureHeader, webhooksig.SlackSignatureHeader, webhooksig.SlackTimestampHeader,
	webhooksig.HubSpotSignatureV3Header, webhooksig.HubSpotTimestampHeader, webhooksig.HubSpotSignatureHeader,
	webhooksig.HubSpotVersionHeader, "Idempotency-Key", "X-Request-Id",
}

func (s scheme) message(h http.Header, body []byte) *webhooksig.Message {
	return &webhooksig.Message{Method: "POST", URL: hookURL, Header: h, Body: body}
}

func TestSchemes(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_1","object":"event","data":{"amount":100}}`)
	for _, s := range schemes() {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			oldSecret, newSecret := s.secrets[0], s.secrets[1]
			now := clockAt(fixedNow)
			v := s.newVerifier(t, now, newSecret)

			t.Run("round trip", func(t *testing.T) {
				d, err := v.Verify(s.message(s.sign(t, newSecret, fixedNow, body), body))
				require.NoError(t, err)
				require.Equal(t, v.Name(), d.Verifier)
				require.NotEmpty(t, d.ID)
				if s.tolerance > 0 {
					require.True(t, d.Timestamp.Equal(fixedNow), "timestamp %v", d.Timestamp)
				}
			})
			t.Run("tampered body", func(t *testing.T) {
				tampered := append([]byte(nil), body...)
				tampered[len(tampered)-3] = '9'
				_, err := v.Verify(s.message(s.sign(t, newSecret, fixedNow, body), tampered))
				require.ErrorIs(t, err, webhooksig.ErrBadSignature)
				require.Equal(t, http.StatusUnauthorized, webhooksig.StatusCode(err))
			})
			t.Run("wrong secret", func(t *testing.T) {
				_, err := v.Verify(s.message(s.sign(t, oldSecret, fixedNow, body), body))
				require.ErrorIs(t, err, webhooksig.ErrBadSignature)
			})
			t.Run("rotation", func(t *testing.T) {
				both := s.newVerifier(t, now, newSecret, oldSecret)
				for _, secret := range []string{oldSecret, newSecret} {
					_, err := both.Verify(s.message(s.sign(t, secret, fixedNow, body), body))
					require.NoError(t, err, "signed with %q", secret)
				}
			})
			t.Run("missing header", func(t *testing.T) {
				for _, name := range s.headers {
					h := s.sign(t, newSecret, fixedNow, body)
					h.Del(name)
					_, err := v.Verify(s.message(h, body))
					require.ErrorIs(t, err, webhooksig.ErrMissingHeader, name)
					require.Equal(t, http.StatusBadRequest, webhooksig.StatusCode(err))
					require.Contains(t, err.Error(), name)
				}
			})
			t.Run("duplicated header", func(t *testing.T) {
				for _, name := range s.headers {
					h := s.sign(t, newSecret, fixedNow, body)
					h.Add(name, h.Get(name))
					_, err := v.Verify(s.message(h, body))
					require.ErrorIs(t, err, webhooksig.ErrMalformedHeader, name)
				}
			})
			// The replay key must be covered by the signature: a captured
			// delivery resent with any header changed, added or removed is
			// either refused or the same delivery.
			t.Run("replay key is signed", func(t *testing.T) {
				signed := s.sign(t, newSecret, fixedNow, body)
				want, err := v.Verify(s.message(signed, body))
				require.NoError(t, err)
				for _, name := range knownHeaders {
					for _, value := range []string{"", "changed-" + name, "d-2"} {
						h := signed.Clone()
						if value == "" {
							h.Del(name)
						} else {
							h.Set(name, value)
						}
						got, err := v.Verify(s.message(h, body))
						if err == nil {
							require.Equal(t, want.ID, got.ID, "%s set to %q", name, value)
						}
					}
				}
			})
			t.Run("error never echoes secrets or signatures", func(t *testing.T) {
				h := s.sign(t, oldSecret, fixedNow, body)
				_, err := v.Verify(s.message(h, body))
				require.Error(t, err)
				expected := s.sign(t, newSecret, fixedNow, body)
				for _, values := range expected {
					for _, value := range values {
						if len(value) >= 32 { // signatures, not short ids or timestamps
							require.NotContains(t, err.Error(), value)
						}
					}
				}
				for _, values := range h {
					for _, value := range values {
						if len(value) >= 32 {
							require.NotContains(t, err.Error(), value)
						}
					}
				}
				require.NotContains(t, err.Error(), oldSecret)
				require.NotContains(t, err.Error(), newSecret)
			})
			if s.tolerance == 0 {
				return
			}
			t.Run("timestamps", func(t *testing.T) {
				for _, offset := range []time.Duration{-s.tolerance, s.tolerance, 0} {
					_, err := v.Verify(s.message(s.sign(t, newSecret, fixedNow.Add(offset), body), body))
					require.NoError(t, err, "offset %v", offset)
				}
				for _, offset := range []time.Duration{-s.tolerance - time.Second, s.tolerance + time.Second, -24 * time.Hour, 24 * time.Hour} {
					_, err := v.Verify(s.message(s.sign(t, newSecret, fixedNow.Add(offset), body), body))
					require.ErrorIs(t, err, webhooksig.ErrStaleTimestamp, "offset %v", offset)
					require.Equal(t, http.StatusUnauthorized, webhooksig.StatusCode(err))
				}
			})
			t.Run("configurable tolerance", func(t *testing.T) {
				strict := configurable(t, s, now, time.Second, newSecret)
				_, err := strict.Verify(s.message(s.sign(t, newSecret, fixedNow.Add(-2*time.Second), body), body))
				require.ErrorIs(t, err, webhooksig.ErrStaleTimestamp)
				_, err = strict.Verify(s.message(s.sign(t, newSecret, fixedNow.Add(-time.Second), body), body))
				require.NoError(t, err)
			})
		})
	}
}

// configurable builds s's verifier with an explicit tolerance.
func configurable(t *testing.T, s scheme, now func() time.Time, tolerance time.Duration, secret string) webhooksig.Verifier {
	t.Helper()
	var (
		v   webhooksig.Verifier
		err error
	)
	switch s.name {
	case "stripe":
		v, err = webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{secret}, Now: now, Tolerance: tolerance})
	case "standard-webhooks":
		v, err = webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{secret}, Now: now, Tolerance: tolerance})
	case "slack":
		v, err = webhooksig.NewSlack(webhooksig.SlackConfig{Secrets: []string{secret}, Now: now, Tolerance: tolerance})
	case "calendly":
		v, err = webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: []string{secret}, Now: now, Tolerance: tolerance})
	case "hubspot-v3":
		v, err = webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{secret}, Now: now, Tolerance: tolerance})
	default:
		t.Fatalf("no tolerance for %s", s.name)
	}
	require.NoError(t, err)
	return v
}

func TestStripeHeaderFields(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_123","object":"event"}`)
	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_a"}, Now: clockAt(fixedNow)})
	require.NoError(t, err)
	good := webhooksig.SignStripe(fixedNow, body, "whsec_a")
	goodSig := strings.TrimPrefix(good[strings.Index(good, ","):], ",v1=")
	ts := formatUnix(fixedNow)
	other := hex.EncodeToString(make([]byte, 32))

	cases := []struct {
		name, header string
		wantErr      error
	}{
		{"valid", good, nil},
		{"rolled secret: second v1 matches", "t=" + ts + ",v1=" + other + ",v1=" + goodSig, nil},
		{"v0 alongside is ignored", good + ",v0=" + other, nil},
		{"only v0", "t=" + ts + ",v0=" + goodSig, webhooksig.ErrUnknownKey},
		{"missing t", "v1=" + goodSig, webhooksig.ErrMalformedHeader},
		{"missing v1", "t=" + ts, webhooksig.ErrMalformedHeader},
		{"duplicated t", "t=" + ts + ",t=" + ts + ",v1=" + goodSig, webhooksig.ErrMalformedHeader},
		{"negative t", "t=-" + ts + ",v1=" + goodSig, webhooksig.ErrMalformedHeader},
		{"non-hex v1", "t=" + ts + ",v1=zz" + goodSig[2:], webhooksig.ErrMalformedHeader},
		{"short v1", "t=" + ts + ",v1=" + goodSig[:10], webhooksig.ErrMalformedHeader},
		{"empty element", good + ",", webhooksig.ErrMalformedHeader},
		{"too many signatures", "t=" + ts + strings.Repeat(",v1="+other, 16) + ",v1=" + goodSig, webhooksig.ErrMalformedHeader},
		{"sixteen signatures", "t=" + ts + strings.Repeat(",v1="+other, 15) + ",v1=" + goodSig, nil},
		{"different t", "t=" + formatUnix(fixedNow.Add(time.Second)) + ",v1=" + goodSig, webhooksig.ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := v.Verify(message("POST", "", body, "Stripe-Signature", tc.header))
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "evt_123", d.ID, "the delivery id is the event id")
		})
	}
}

func TestStripeSignsWithEverySecret(t *testing.T) {
	t.Parallel()
	header := webhooksig.SignStripe(fixedNow, []byte("{}"), "whsec_a", "whsec_b")
	require.Equal(t, 2, strings.Count(header, ",v1="))
	for _, secret := range []string{"whsec_a", "whsec_b"} {
		v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{secret}, Now: clockAt(fixedNow)})
		require.NoError(t, err)
		d, err := v.Verify(message("POST", "", []byte("{}"), "Stripe-Signature", header))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(d.ID, "sig:"), d.ID)
		require.Len(t, d.ID, 4+64, "without an event id the delivery id is the signature's digest")
		for _, part := range strings.Split(header, ",") {
			require.NotContains(t, d.ID, strings.TrimPrefix(part, "v1="), "the id is not the signature itself")
		}
	}
}

func TestCalendlyHeaderFields(t *testing.T) {
	t.Parallel()
	body := []byte(`{"event":"invitee.created"}`)
	v, err := webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: []string{"key"}, Now: clockAt(fixedNow)})
	require.NoError(t, err)
	good := webhooksig.SignCalendly("key", fixedNow, body)
	require.True(t, strings.HasPrefix(good, "t="+formatUnix(fixedNow)+",v1="), good)
	sig := good[strings.Index(good, "v1=")+3:]
	for header, wantErr := range map[string]error{
		"v1=" + sig + ",t=" + formatUnix(fixedNow): nil, // order does not matter
		"t=" + formatUnix(fixedNow):                webhooksig.ErrMalformedHeader,
		"t=,v1=" + sig:                             webhooksig.ErrMalformedHeader,
		"t=" + formatUnix(fixedNow) + ",v1":        webhooksig.ErrMalformedHeader,
		"garbage":                                  webhooksig.ErrMalformedHeader,
	} {
		_, err := v.Verify(message("POST", "", body, "Calendly-Webhook-Signature", header))
		if wantErr == nil {
			require.NoError(t, err, header)
		} else {
			require.ErrorIs(t, err, wantErr, header)
		}
	}
}

func TestMoyasar(t *testing.T) {
	t.Parallel()
	v, err := webhooksig.NewMoyasar(webhooksig.MoyasarConfig{Tokens: []string{"new-token", "old-token"}})
	require.NoError(t, err)
	event := []byte(`{"id":"7c5c1a44-1b2c-4ad4-9a4f-0d3c5f0e1e2a","type":"payment_paid","live":false,"data":{"amount":1000}}`)

	for _, token := range []string{"new-token", "old-token"} {
		signed, err := webhooksig.SignMoyasar(token, event)
		require.NoError(t, err)
		d, err := v.Verify(message("POST", "", signed))
		require.NoError(t, err, token)
		require.Equal(t, "7c5c1a44-1b2c-4ad4-9a4f-0d3c5f0e1e2a", d.ID)
		require.Equal(t, "moyasar", d.Verifier)
	}
	wrong, err := webhooksig.SignMoyasar("new-token-but-longer", event)
	require.NoError(t, err)
	_, err = v.Verify(message("POST", "", wrong))
	require.ErrorIs(t, err, webhooksig.ErrBadSignature)
	require.NotContains(t, err.Error(), "new-token")

	_, err = v.Verify(message("POST", "", event))
	require.ErrorIs(t, err, webhooksig.ErrMissingHeader)
	require.Contains(t, err.Error(), "secret_token")
	_, err = v.Verify(message("POST", "", []byte(`{"secret_token":""}`)))
	require.ErrorIs(t, err, webhooksig.ErrMissingHeader)
	_, err = v.Verify(message("POST", "", []byte(`not json`)))
	require.ErrorIs(t, err, webhooksig.ErrMalformedBody)
	require.Equal(t, http.StatusBadRequest, webhooksig.StatusCode(err))
	_, err = v.Verify(message("POST", "", []byte(`{"secret_token":42}`)))
	require.ErrorIs(t, err, webhooksig.ErrMalformedBody)

	_, err = webhooksig.SignMoyasar("t", []byte(`[1]`))
	require.ErrorIs(t, err, webhooksig.ErrMalformedBody)

	// An event without "id" is keyed by its body, so it is still guarded.
	anonymous, err := webhooksig.SignMoyasar("new-token", []byte(`{"type":"payment_paid"}`))
	require.NoError(t, err)
	d, err := v.Verify(message("POST", "", anonymous))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(d.ID, "body:"), d.ID)
	again, err := v.Verify(message("POST", "", anonymous))
	require.NoError(t, err)
	require.Equal(t, d.ID, again.ID)
}

func TestHubSpotVersions(t *testing.T) {
	t.Parallel()
	body := []byte(`[{"eventId":1}]`)
	v3only, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{"s"}, Now: clockAt(fixedNow)})
	require.NoError(t, err)
	legacy, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{"s"}, Now: clockAt(fixedNow), Legacy: true})
	require.NoError(t, err)

	v1 := message("POST", hookURL, body, "X-HubSpot-Signature", webhooksig.SignHubSpotV1("s", body), "X-HubSpot-Signature-Version", "v1")
	_, err = v3only.Verify(v1)
	require.ErrorIs(t, err, webhooksig.ErrMissingHeader, "v1 is refused unless Legacy is set")
	_, err = legacy.Verify(v1)
	require.NoError(t, err)

	v9 := message("POST", hookURL, body, "X-HubSpot-Signature", webhooksig.SignHubSpotV1("s", body), "X-HubSpot-Signature-Version", "v9")
	_, err = legacy.Verify(v9)
	require.ErrorIs(t, err, webhooksig.ErrUnknownKey)

	// v3 signs the decoded URI: a request to the encoded form verifies.
	ts, sig := webhooksig.SignHubSpotV3("s", "POST", "https://h.example/p?a=b:c", body, fixedNow)
	m := message("POST", "https://h.example/p%3Fa=b%3ac", body, "X-HubSpot-Request-Timestamp", ts, "X-HubSpot-Signature-v3", sig)
	m.URL = "https://h.example/p?a=b%3Ac"
	_, err = v3only.Verify(m)
	require.NoError(t, err)
	m.URL = "https://h.example/p?a=b%3Bc"
	_, err = v3only.Verify(m)
	require.ErrorIs(t, err, webhooksig.ErrBadSignature)
	m.URL = "https://h.example/p?a=b:c"
	m.Method = "PUT"
	_, err = v3only.Verify(m)
	require.ErrorIs(t, err, webhooksig.ErrBadSignature, "v3 signs the method")

	// The timestamp is in milliseconds.
	require.Equal(t, strconv.FormatInt(fixedNow.UnixMilli(), 10), ts)
	m = message("POST", "https://h.example/p", body, "X-HubSpot-Request-Timestamp", formatUnix(fixedNow), "X-HubSpot-Signature-v3", sig)
	_, err = v3only.Verify(m)
	require.ErrorIs(t, err, webhooksig.ErrStaleTimestamp, "seconds read as milliseconds are in 1970")
}

func TestConstructorsValidate(t *testing.T) {
	t.Parallel()
	errs := []error{}
	_, err := webhooksig.NewGitHub(webhooksig.GitHubConfig{})
	errs = append(errs, err)
	_, err = webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{""}})
	errs = append(errs, err)
	_, err = webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"a"}, Tolerance: -time.Second})
	errs = append(errs, err)
	_, err = webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{"whsec_not base64!"}})
	errs = append(errs, err)
	_, err = webhooksig.NewStandard(webhooksig.StandardConfig{})
	errs = append(errs, err)
	_, err = webhooksig.NewSlack(webhooksig.SlackConfig{})
	errs = append(errs, err)
	_, err = webhooksig.NewCalendly(webhooksig.CalendlyConfig{})
	errs = append(errs, err)
	_, err = webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{"s"}, Tolerance: -1})
	errs = append(errs, err)
	_, err = webhooksig.NewMoyasar(webhooksig.MoyasarConfig{})
	errs = append(errs, err)
	_, err = webhooksig.SignStandard("id", fixedNow, nil, "whsec_***")
	errs = append(errs, err)
	for i, err := range errs {
		require.ErrorIs(t, err, webhooksig.ErrInvalidConfig, "case %d", i)
	}
	require.NotContains(t, errs[3].Error(), "not base64!", "the secret is not echoed")
}

// Verifiers are shared by all requests: concurrent checks with pooled MAC
// states must neither race nor mix up results.
func TestVerifierConcurrentUse(t *testing.T) {
	t.Parallel()
	v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_new", "whsec_old"}, Now: clockAt(fixedNow)})
	require.NoError(t, err)
	results := make(chan error, 8*100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				body := []byte(fmt.Sprintf(`{"id":"evt_%d_%d"}`, g, i))
				secret := []string{"whsec_new", "whsec_old", "whsec_wrong"}[i%3]
				d, err := v.Verify(message("POST", "", body, "Stripe-Signature", webhooksig.SignStripe(fixedNow, body, secret)))
				switch {
				case secret == "whsec_wrong" && !errors.Is(err, webhooksig.ErrBadSignature):
					results <- fmt.Errorf("wrong secret accepted: %v", err)
				case secret != "whsec_wrong" && (err != nil || d.ID != fmt.Sprintf("evt_%d_%d", g, i)):
					results <- fmt.Errorf("good delivery %d/%d: %v %q", g, i, err, d.ID)
				default:
					results <- nil
				}
			}
		})
	}
	wg.Wait()
	close(results)
	for err := range results {
		require.NoError(t, err)
	}
}
