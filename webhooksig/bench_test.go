package webhooksig_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/webhooksig"
)

// benchPayload is a 1 KiB JSON event, id first, as Stripe sends it.
var benchPayload = func() []byte {
	head := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"pad":"`)
	tail := []byte(`"}}`)
	return append(append(head, bytes.Repeat([]byte("a"), 1024-len(head)-len(tail))...), tail...)
}()

func benchVerify(b *testing.B, v webhooksig.Verifier, m *webhooksig.Message) {
	b.Helper()
	if _, err := v.Verify(m); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(m.Body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies a 1 KiB payload per scheme with a fixed clock.
// BareHMAC is the floor with the verifiers' key handling: a keyed
// HMAC-SHA256 state made once and Reset after each use (which restores the
// keyed state without rehashing the key), one MAC over the body and a
// constant-time compare. The side-by-side ratios against the peer
// libraries are bench/'s BenchmarkWebhookRatio.
//
//	go test -run '^$' -bench BenchmarkVerify -benchmem ./webhooksig/
func BenchmarkVerify(b *testing.B) {
	now := fixedNow
	clock := clockAt(now)
	body := benchPayload

	b.Run("BareHMAC", func(b *testing.B) {
		key := []byte("whsec_bench")
		want := hmac.New(sha256.New, key)
		want.Write(body)
		sum := want.Sum(nil)
		mac := hmac.New(sha256.New, key)
		var got [sha256.Size]byte
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			mac.Write(body)
			if !hmac.Equal(mac.Sum(got[:0]), sum) {
				b.Fatal("mismatch")
			}
			mac.Reset()
		}
	})
	b.Run("GitHub", func(b *testing.B) {
		v, _ := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{"whsec_bench"}})
		benchVerify(b, v, message("POST", "", body, "X-Hub-Signature-256", webhooksig.SignGitHub("whsec_bench", body), "X-GitHub-Delivery", "d-1"))
	})
	b.Run("Stripe", func(b *testing.B) {
		v, _ := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{"whsec_bench"}, Now: clock})
		benchVerify(b, v, message("POST", "", body, "Stripe-Signature", webhooksig.SignStripe(now, body, "whsec_bench")))
	})
	b.Run("StandardWebhooks", func(b *testing.B) {
		v, _ := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{standardSecret}, Now: clock})
		sig, _ := webhooksig.SignStandard("msg_1", now, body, standardSecret)
		benchVerify(b, v, message("POST", "", body, "webhook-id", "msg_1", "webhook-timestamp", formatUnix(now), "webhook-signature", sig))
	})
	b.Run("Slack", func(b *testing.B) {
		v, _ := webhooksig.NewSlack(webhooksig.SlackConfig{Secrets: []string{"whsec_bench"}, Now: clock})
		ts, sig := webhooksig.SignSlack("whsec_bench", now, body)
		benchVerify(b, v, message("POST", "", body, "X-Slack-Request-Timestamp", ts, "X-Slack-Signature", sig))
	})
	b.Run("Calendly", func(b *testing.B) {
		v, _ := webhooksig.NewCalendly(webhooksig.CalendlyConfig{Secrets: []string{"whsec_bench"}, Now: clock})
		benchVerify(b, v, message("POST", "", body, "Calendly-Webhook-Signature", webhooksig.SignCalendly("whsec_bench", now, body)))
	})
	b.Run("HubSpotV3", func(b *testing.B) {
		v, _ := webhooksig.NewHubSpot(webhooksig.HubSpotConfig{Secrets: []string{"whsec_bench"}, Now: clock})
		ts, sig := webhooksig.SignHubSpotV3("whsec_bench", "POST", hookURL, body, now)
		benchVerify(b, v, message("POST", hookURL, body, "X-HubSpot-Request-Timestamp", ts, "X-HubSpot-Signature-v3", sig))
	})
	b.Run("Moyasar", func(b *testing.B) {
		v, _ := webhooksig.NewMoyasar(webhooksig.MoyasarConfig{Tokens: []string{"whsec_bench"}})
		signed, _ := webhooksig.SignMoyasar("whsec_bench", body)
		benchVerify(b, v, message("POST", "", signed))
	})
	b.Run("GitHubTwoSecrets", func(b *testing.B) {
		v, _ := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{"whsec_new", "whsec_bench"}})
		benchVerify(b, v, message("POST", "", body, "X-Hub-Signature-256", webhooksig.SignGitHub("whsec_bench", body)))
	})
}

// BenchmarkMiddleware is a verified request through the HTTP adapter,
// without a network: body read, verification, context and handler call.
func BenchmarkMiddleware(b *testing.B) {
	v, _ := webhooksig.NewGitHub(webhooksig.GitHubConfig{Secrets: []string{"whsec_bench"}})
	mw, err := webhooksig.New(v, webhooksig.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	sig := webhooksig.SignGitHub("whsec_bench", benchPayload)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := http.NewRequest(http.MethodPost, "https://example.com/hooks", bytes.NewReader(benchPayload))
		r.Header.Set("X-Hub-Signature-256", sig)
		h.ServeHTTP(w, r)
	}
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkReplayGuard is the replay guard's database round trip against
// the test PostgreSQL (internal/pgtest: DEALIX_TEST_DATABASE_URL or a
// container), the store on the app role's pool, each delivery with a new
// id, one at a time.
//
//   - Middleware: a verified Standard Webhooks delivery through the
//     middleware with the guard on: verification, the claim, the handler
//     (empty) and the completion.
//
//   - Claim: the store alone, one Claim and one Complete (two statements,
//     each its own round trip and commit); it reports the latency of the
//     pair per delivery as p50-ms and p99-ms.
//
//     go test -run '^$' -bench BenchmarkReplayGuard -benchtime 2000x -count 3 ./webhooksig/
func BenchmarkReplayGuard(b *testing.B) {
	db := pgtest.New(b)
	store, err := webhooksig.NewReplayStore(db.App, webhooksig.ReplayStoreConfig{})
	if err != nil {
		b.Fatal(err)
	}
	// Ids are unique across -count runs, which share the database.
	nonce := func() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }
	b.Run("Middleware", func(b *testing.B) {
		v, _ := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{standardSecret}})
		mw, err := webhooksig.New(v, webhooksig.Config{Replay: store, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		h := mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		w := &discardWriter{header: http.Header{}}
		now := time.Now()
		ts := formatUnix(now)
		run := nonce()
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			i++
			id := "msg_mw_" + run + "_" + strconv.Itoa(i)
			sig, _ := webhooksig.SignStandard(id, now, benchPayload, standardSecret)
			r, _ := http.NewRequest(http.MethodPost, "https://example.com/hooks", bytes.NewReader(benchPayload))
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", ts)
			r.Header.Set("webhook-signature", sig)
			h.ServeHTTP(w, r)
		}
	})
	b.Run("Claim", func(b *testing.B) {
		ctx := context.Background()
		run := nonce()
		i := 0
		var lat []time.Duration
		b.ReportAllocs()
		for b.Loop() {
			i++
			id := "msg_claim_" + run + "_" + strconv.Itoa(i)
			start := time.Now()
			c, err := store.Claim(ctx, "bench", id, time.Hour)
			if err != nil || c.Status != webhooksig.ClaimAcquired {
				b.Fatal(c.Status, err)
			}
			if err := store.Complete(ctx, "bench", id, c.Token); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	})
}
