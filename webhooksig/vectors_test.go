package webhooksig_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/webhooksig"
)

// GitHub's documentation, "Validating webhook deliveries", testing section.
func TestGitHubDocumentedVector(t *testing.T) {
	t.Parallel()
	const secret = "It's a Secret to Everybody"
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	body := []byte("Hello, World!")
	require.Equal(t, want, webhooksig.SignGitHub(secret, body))

	v, err := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{secret}})
	require.NoError(t, err)
	d, err := v.Verify(message("POST", "", body, "X-Hub-Signature-256", want, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"))
	require.NoError(t, err)
	require.Equal(t, "72d3162e-cc78-11e3-81ab-4c9367dc0958", d.SenderID, "the unsigned header is passed on")
	require.True(t, strings.HasPrefix(d.ID, "sig:"), "the replay key is the signature's digest, not the unsigned header: %s", d.ID)
	require.Equal(t, "github", d.Verifier)
}

// Slack's documentation, "Verifying requests from Slack", worked example.
func TestSlackDocumentedVector(t *testing.T) {
	t.Parallel()
	const secret = "8f742231b10e8888abcd99yyyzzz85a5"
	const want = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	body := []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
	at := time.Unix(1531420618, 0)
	ts, sig := webhooksig.SignSlack(secret, at, body)
	require.Equal(t, "1531420618", ts)
	require.Equal(t, want, sig)

	v, err := webhooksig.NewSlack(webhooksig.SlackConfig{Secrets: []string{secret}, Now: clockAt(at.Add(time.Minute))})
	require.NoError(t, err)
	d, err := v.Verify(message("POST", "", body, "X-Slack-Request-Timestamp", "1531420618", "X-Slack-Signature", want))
	require.NoError(t, err)
	require.Equal(t, at, d.Timestamp)
}

// Standard Webhooks' reference Go library, webhook_test.go TestWebhookSign.
func TestStandardWebhooksLibrarySignVector(t *testing.T) {
	t.Parallel()
	const key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	const want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	at := time.Unix(1614265330, 0)
	payload := []byte(`{"test": 2432232314}`)

	got, err := webhooksig.SignStandard(id, at, payload, key)
	require.NoError(t, err)
	require.Equal(t, want, got)

	for _, secret := range []string{key, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} { // TestWebhookPrefix: prefix optional
		v, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{secret}, Now: clockAt(at)})
		require.NoError(t, err)
		d, err := v.Verify(message("POST", "", payload, "webhook-id", id, "webhook-timestamp", "1614265330", "webhook-signature", want))
		require.NoError(t, err)
		require.Equal(t, id, d.ID)
	}
}

// The cases of Standard Webhooks' reference Go library, webhook_test.go
// TestWebhook, over the same secret, id and payload.
func TestStandardWebhooksLibraryCases(t *testing.T) {
	t.Parallel()
	const secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	const id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	const foreign = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
	payload := []byte(`{"test": 2432232314}`)
	tolerance := 5 * time.Minute
	v, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{secret}, Now: clockAt(fixedNow)})
	require.NoError(t, err)

	signed := func(at time.Time) (string, string) {
		sig, err := webhooksig.SignStandard(id, at, payload, secret)
		require.NoError(t, err)
		return sig, formatUnix(at)
	}
	valid, now := signed(fixedNow)
	old, oldTS := signed(fixedNow.Add(-tolerance - time.Second))
	future, futureTS := signed(fixedNow.Add(tolerance + time.Second))

	cases := []struct {
		name    string
		headers []string
		wantErr error
	}{
		{"valid signature is valid", []string{"webhook-id", id, "webhook-timestamp", now, "webhook-signature", valid}, nil},
		{"missing id returns error", []string{"webhook-timestamp", now, "webhook-signature", valid}, webhooksig.ErrMissingHeader},
		{"missing timestamp returns error", []string{"webhook-id", id, "webhook-signature", valid}, webhooksig.ErrMissingHeader},
		{"missing signature returns error", []string{"webhook-id", id, "webhook-timestamp", now}, webhooksig.ErrMissingHeader},
		{"invalid signature is invalid", []string{"webhook-id", id, "webhook-timestamp", now, "webhook-signature", foreign}, webhooksig.ErrBadSignature},
		{"partial signature is invalid", []string{"webhook-id", id, "webhook-timestamp", now, "webhook-signature", "v1,"}, webhooksig.ErrMalformedHeader},
		{"old timestamp fails", []string{"webhook-id", id, "webhook-timestamp", oldTS, "webhook-signature", old}, webhooksig.ErrStaleTimestamp},
		{"new timestamp fails", []string{"webhook-id", id, "webhook-timestamp", futureTS, "webhook-signature", future}, webhooksig.ErrStaleTimestamp},
		{"valid multi sig is valid", []string{"webhook-id", id, "webhook-timestamp", now,
			"webhook-signature", foreign + " v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + valid + " " + foreign}, nil},
		{"only unknown versions", []string{"webhook-id", id, "webhook-timestamp", now, "webhook-signature", "v1a,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="}, webhooksig.ErrUnknownKey},
		{"signed id differs", []string{"webhook-id", id + "x", "webhook-timestamp", now, "webhook-signature", valid}, webhooksig.ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(message("POST", "", payload, tc.headers...))
			if tc.wantErr == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
		})
	}
}

// HubSpot's documentation, "Validating requests", v1 and v2 examples.
func TestHubSpotDocumentedVectors(t *testing.T) {
	t.Parallel()
	const secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
	v1Body := []byte(`[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`)
	const v1Want = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
	v2Body := []byte(`{"example_field":"example_value"}`)
	const v2URI = "https://www.example.com/webhook_uri"
	const v2Want = "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"

	require.Equal(t, v1Want, webhooksig.SignHubSpotV1(secret, v1Body))
	require.Equal(t, v2Want, webhooksig.SignHubSpotV2(secret, "POST", v2URI, v2Body))

	v, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{secret}, Legacy: true})
	require.NoError(t, err)
	_, err = v.Verify(message("POST", v2URI, v1Body, "X-HubSpot-Signature", v1Want, "X-HubSpot-Signature-Version", "v1"))
	require.NoError(t, err)
	_, err = v.Verify(message("POST", v2URI, v2Body, "X-HubSpot-Signature", v2Want, "X-HubSpot-Signature-Version", "v2"))
	require.NoError(t, err)
	_, err = v.Verify(message("GET", v2URI, v2Body, "X-HubSpot-Signature", v2Want, "X-HubSpot-Signature-Version", "v2"))
	require.ErrorIs(t, err, webhooksig.ErrBadSignature, "v2 signs the method")
}

func TestHubSpotDecodeURI(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"https://example.com/a": "https://example.com/a",
		"https://example.com/a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29": "https://example.com/a:b/c?d@e!f$g'h(i)",
		"https://example.com/x%2a%2C%3b":                           "https://example.com/x*,;",
		"https://example.com/keep%20space%25pct%3":                 "https://example.com/keep%20space%25pct%3",
		"%":    "%",
		"%3A%": ":%",
	}
	for in, want := range cases {
		require.Equal(t, want, webhooksig.HubSpotDecodeURI(in), in)
	}
}
