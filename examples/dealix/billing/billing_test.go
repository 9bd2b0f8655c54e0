package billing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dealix/platform/webhooksig"
)

func TestFakeCreatesPaysAndDelivers(t *testing.T) {
	verifier, err := webhooksig.NewMoyasar(webhooksig.MoyasarConfig{Tokens: []string{"tok"}})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := webhooksig.New(verifier, webhooksig.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	calls := 0
	hook := httptest.NewServer(mw.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 { // the first attempt fails: the fake retries
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got = append(got, string(b))
	})))
	defer hook.Close()

	fake, err := StartFake(FakeConfig{SecretKey: "sk", WebhookToken: "tok", PayAfter: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()

	_, err = (&Moyasar{BaseURL: fake.URL(), SecretKey: "wrong"}).CreateInvoice(context.Background(), InvoiceRequest{Amount: 100, Currency: "SAR", CallbackURL: hook.URL})
	if !errors.Is(err, ErrProvider) {
		t.Fatalf("wrong key: %v", err)
	}
	_, err = (&Moyasar{BaseURL: fake.URL(), SecretKey: "sk"}).CreateInvoice(context.Background(), InvoiceRequest{Amount: 100, Currency: "SAR", CallbackURL: "http://example.com/x"})
	if !errors.Is(err, ErrProvider) {
		t.Fatalf("a webhook off this machine: %v", err)
	}
	inv, err := (&Moyasar{BaseURL: fake.URL(), SecretKey: "sk"}).CreateInvoice(context.Background(), InvoiceRequest{
		Amount: 4900, Currency: "SAR", CallbackURL: hook.URL + "/return", Metadata: map[string]string{MetaTenant: "t1"}})
	if err != nil || inv.ID == "" || inv.Status != "initiated" || !strings.HasPrefix(inv.URL, fake.URL()) {
		t.Fatalf("invoice %+v, %v", inv, err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(fake.Delivered()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fake never delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], `"invoice_id":"`+inv.ID+`"`) || !strings.Contains(got[0], `"type":"payment_paid"`) ||
		!strings.Contains(got[0], `"dealix_tenant_id":"t1"`) || calls != 2 {
		t.Fatalf("calls %d, delivered %q", calls, got)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080/webhooks/moyasar", "http://localhost/x", "https://[::1]:9/x"} {
		if err := checkLoopback(ok); err != nil {
			t.Fatalf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/x", "http://10.1.2.3/x", "file:///etc/passwd", "http://127.0.0.1.example.com/"} {
		if err := checkLoopback(bad); err == nil {
			t.Fatalf("%s accepted", bad)
		}
	}
}
