package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/dealix/platform/webhooksig"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v85/webhook"
)

// Peers: the Standard Webhooks reference library and stripe-go's webhook
// package, checked both ways against webhooksig and timed on one 1 KiB
// JSON payload.

const swSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
const stripeSecret = "whsec_test_secret"

var payload = func() []byte {
	head := []byte(`{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"pad":"`)
	tail := []byte(`"}}`)
	return append(append(head, bytes.Repeat([]byte("a"), 1024-len(head)-len(tail))...), tail...)
}()

func TestStandardCross(t *testing.T) {
	now := time.Now()
	ours, err := webhooksig.SignStandard("msg_1", now, payload, swSecret)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := standardwebhooks.NewWebhook(swSecret)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", ours)
	if err := ref.Verify(payload, h); err != nil {
		t.Fatalf("reference rejects our signature: %v", err)
	}
	theirs, _ := ref.Sign("msg_1", now, payload)
	h.Set("webhook-signature", theirs)
	v, _ := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{swSecret}})
	if _, err := v.Verify(&webhooksig.Message{Header: h, Body: payload}); err != nil {
		t.Fatalf("we reject the reference signature: %v", err)
	}
	if ours != theirs {
		t.Fatalf("%s != %s", ours, theirs)
	}
}

func TestStripeCross(t *testing.T) {
	now := time.Now()
	ours := webhooksig.SignStripe(now, payload, stripeSecret)
	if err := webhook.ValidatePayload(payload, ours, stripeSecret); err != nil {
		t.Fatalf("stripe-go rejects our signature: %v", err)
	}
	theirs := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: stripeSecret, Timestamp: now})
	v, _ := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{stripeSecret}})
	if _, err := v.Verify(&webhooksig.Message{Header: http.Header{"Stripe-Signature": {theirs.Header}}, Body: payload}); err != nil {
		t.Fatalf("we reject stripe-go's signature: %v", err)
	}
	if ours != theirs.Header {
		t.Fatalf("%s != %s", ours, theirs.Header)
	}
}

func BenchmarkStandardOurs(b *testing.B) {
	now := time.Now()
	sig, _ := webhooksig.SignStandard("msg_1", now, payload, swSecret)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	v, _ := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{swSecret}, Now: func() time.Time { return now }})
	m := &webhooksig.Message{Header: h, Body: payload}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStandardReference(b *testing.B) {
	now := time.Now()
	sig, _ := webhooksig.SignStandard("msg_1", now, payload, swSecret)
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	ref, _ := standardwebhooks.NewWebhook(swSecret)
	b.ReportAllocs()
	for b.Loop() {
		if err := ref.Verify(payload, h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripeOurs(b *testing.B) {
	now := time.Now()
	h := http.Header{"Stripe-Signature": {webhooksig.SignStripe(now, payload, stripeSecret)}}
	v, _ := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{stripeSecret}, Now: func() time.Time { return now }})
	m := &webhooksig.Message{Header: h, Body: payload}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStripeReference(b *testing.B) {
	header := webhooksig.SignStripe(time.Now(), payload, stripeSecret)
	b.ReportAllocs()
	for b.Loop() {
		if err := webhook.ValidatePayload(payload, header, stripeSecret); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareHMAC(b *testing.B) {
	key := []byte(stripeSecret)
	want := hmac.New(sha256.New, key)
	want.Write(payload)
	sum := want.Sum(nil)
	b.ReportAllocs()
	for b.Loop() {
		mac := hmac.New(sha256.New, key)
		mac.Write(payload)
		if !hmac.Equal(mac.Sum(nil), sum) {
			b.Fatal("mismatch")
		}
	}
}
