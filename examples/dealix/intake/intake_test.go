package intake

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestSignedURL(t *testing.T) {
	r := httptest.NewRequest("POST", "http://127.0.0.1:8080/webhooks/hubspot/t?x=1", nil)
	if got := SignedURL("")(r); got != "http://127.0.0.1:8080/webhooks/hubspot/t?x=1" {
		t.Fatalf("plain: %s", got)
	}
	r.TLS = &tls.ConnectionState{}
	if got := SignedURL("")(r); got != "https://127.0.0.1:8080/webhooks/hubspot/t?x=1" {
		t.Fatalf("TLS: %s", got)
	}
	if got := SignedURL("https://api.example.com/")(r); got != "https://api.example.com/webhooks/hubspot/t?x=1" {
		t.Fatalf("public URL: %s", got)
	}
}

func TestCleanEmail(t *testing.T) {
	for in, want := range map[string]string{" Sara@Example.COM ": "sara@example.com", "a@b.c": "a@b.c"} {
		if got, ok := cleanEmail(in); !ok || got != want {
			t.Fatalf("%q: %q %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "no-at", "Sara <sara@example.com>", "a\x00@b.c", "a@b.c, d@e.f"} {
		if got, ok := cleanEmail(bad); ok {
			t.Fatalf("%q accepted as %q", bad, got)
		}
	}
}
