package webhooksig_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/webhooksig"
)

// received is what the test handler saw.
type received struct {
	body     []byte
	delivery webhooksig.Delivery
	ok       bool
}

// serve starts a real server with v behind the middleware; the handler
// records the request on calls.
func serve(t *testing.T, v webhooksig.Verifier, cfg webhooksig.Config, handler http.Handler) *httptest.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	mw, err := webhooksig.New(v, cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(mw.Handler(handler))
	t.Cleanup(srv.Close)
	return srv
}

func recorder(calls chan<- received) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		d, ok := webhooksig.DeliveryFromContext(r.Context())
		calls <- received{body: body, delivery: d, ok: ok}
		w.WriteHeader(http.StatusAccepted)
	})
}

func post(t *testing.T, url string, body []byte, h http.Header) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for name, values := range h {
		req.Header[name] = values
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var doc map[string]any
	if resp.Header.Get("Content-Type") == "application/problem+json" {
		require.NoError(t, json.Unmarshal(raw, &doc), string(raw))
		doc["raw"] = string(raw)
	}
	return resp, doc
}

func newGitHub(t *testing.T, secrets ...string) *webhooksig.GitHub {
	t.Helper()
	v, err := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: secrets})
	require.NoError(t, err)
	return v
}

func TestMiddlewarePassesVerifiedRequest(t *testing.T) {
	t.Parallel()
	calls := make(chan received, 1)
	srv := serve(t, newGitHub(t, "s3cret"), webhooksig.Config{}, recorder(calls))
	body := []byte(`{"action":"opened"}`)
	resp, _ := post(t, srv.URL+"/hooks", body, http.Header{
		"X-Hub-Signature-256": {webhooksig.SignGitHub("s3cret", body)},
		"X-Github-Delivery":   {"delivery-1"},
	})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	got := <-calls
	require.Equal(t, body, got.body, "the handler reads the body intact")
	require.True(t, got.ok)
	require.Equal(t, "github", got.delivery.Verifier)
	require.Equal(t, "delivery-1", got.delivery.SenderID)
	require.True(t, strings.HasPrefix(got.delivery.ID, "sig:"), got.delivery.ID)
}

func TestMiddlewareRejections(t *testing.T) {
	t.Parallel()
	calls := make(chan received, 10)
	srv := serve(t, newGitHub(t, "s3cret"), webhooksig.Config{MaxBodyBytes: 64}, recorder(calls))
	body := []byte(`{"action":"opened"}`)
	good := webhooksig.SignGitHub("s3cret", body)

	cases := []struct {
		name   string
		body   []byte
		header http.Header
		status int
		detail string
	}{
		{"bad signature", []byte(`{"action":"closed"}`), http.Header{"X-Hub-Signature-256": {good}}, 401, "signature does not match"},
		{"missing header", body, http.Header{}, 400, "X-Hub-Signature-256: missing"},
		{"malformed header", body, http.Header{"X-Hub-Signature-256": {"sha1=" + good[7:]}}, 400, "X-Hub-Signature-256: malformed"},
		{"duplicated header", body, http.Header{"X-Hub-Signature-256": {good, good}}, 400, "malformed"},
		{"body too large", bytes.Repeat([]byte("x"), 65), http.Header{"X-Hub-Signature-256": {good}}, 413, "body too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, doc := post(t, srv.URL, tc.body, tc.header)
			require.Equal(t, tc.status, resp.StatusCode)
			require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
			require.EqualValues(t, tc.status, doc["status"])
			require.Contains(t, doc["detail"], tc.detail)
			require.NotContains(t, doc["raw"], "s3cret")
			require.NotContains(t, doc["raw"], good[7:], "no signature in the response")
			if tc.status == 401 {
				require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	require.Empty(t, calls, "no rejected request reaches the handler")
}

func TestMiddlewareChunkedBodyTooLarge(t *testing.T) {
	t.Parallel()
	calls := make(chan received, 1)
	srv := serve(t, newGitHub(t, "s"), webhooksig.Config{MaxBodyBytes: 1024}, recorder(calls))
	body := strings.Repeat("y", 4096)
	req, err := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader(body))) // unknown length: chunked
	require.NoError(t, err)
	req.Header.Set("X-Hub-Signature-256", webhooksig.SignGitHub("s", []byte(body)))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	require.Empty(t, calls)
}

func TestMiddlewareHubSpotURL(t *testing.T) {
	t.Parallel()
	v, err := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{"client-secret"}})
	require.NoError(t, err)
	calls := make(chan received, 2)
	srv := serve(t, v, webhooksig.Config{}, recorder(calls))
	body := []byte(`[{"eventId":7}]`)
	path := "/hubspot/events?portal=62515&note=a%3Ab%20c"
	// The default URL is https:// + Host + request URI, as the sender addressed it behind TLS.
	signedURL := "https://" + strings.TrimPrefix(srv.URL, "http://") + path
	ts, sig := webhooksig.SignHubSpotV3("client-secret", "POST", signedURL, body, time.Now())
	resp, _ := post(t, srv.URL+path, body, http.Header{"X-Hubspot-Request-Timestamp": {ts}, "X-Hubspot-Signature-V3": {sig}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, body, (<-calls).body)

	// A custom URL function for a server reached under another name.
	srv2 := serve(t, v, webhooksig.Config{URL: func(r *http.Request) string { return "https://public.example" + r.RequestURI }}, recorder(calls))
	ts, sig = webhooksig.SignHubSpotV3("client-secret", "POST", "https://public.example"+path, body, time.Now())
	resp, _ = post(t, srv2.URL+path, body, http.Header{"X-Hubspot-Request-Timestamp": {ts}, "X-Hubspot-Signature-V3": {sig}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	<-calls
	resp, _ = post(t, srv.URL+path, body, http.Header{"X-Hubspot-Request-Timestamp": {ts}, "X-Hubspot-Signature-V3": {sig}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "signed for another URL")
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	v := newGitHub(t, "s")
	for name, cfg := range map[string]webhooksig.Config{
		"negative body limit": {MaxBodyBytes: -1},
		"negative ttl":        {ReplayTTL: -time.Second},
		"unknown action":      {OnReplay: webhooksig.ReplayAction(7)},
	} {
		_, err := webhooksig.New(v, cfg)
		require.ErrorIs(t, err, webhooksig.ErrInvalidConfig, name)
	}
	_, err := webhooksig.New(nil, webhooksig.Config{})
	require.ErrorIs(t, err, webhooksig.ErrInvalidConfig)
}

// A request built in-process may have no body at all.
func TestMiddlewareNilBody(t *testing.T) {
	t.Parallel()
	mw, err := webhooksig.New(newGitHub(t, "s"), webhooksig.Config{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	called := false
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	req, err := http.NewRequest(http.MethodPost, "https://example.com/hook", nil)
	require.NoError(t, err)
	req.Header.Set("X-Hub-Signature-256", webhooksig.SignGitHub("s", nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.True(t, called)
	require.Equal(t, http.StatusOK, rec.Code)
}
