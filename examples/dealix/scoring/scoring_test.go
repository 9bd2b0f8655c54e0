package scoring

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

func TestFakeIsDeterministicAndCountsTokens(t *testing.T) {
	ctx := context.Background()
	rich := Input{Name: "Huda", Email: "huda@najd.sa", Company: "Najd", Source: "Referral", Notes: "budget approved, wants a demo"}
	poor := Input{Name: "Anon", Email: "anon@gmail.com"}
	a, err := Fake{}.Score(ctx, rich)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Fake{}.Score(ctx, rich)
	if a != b {
		t.Fatalf("two answers for one input: %+v, %+v", a, b)
	}
	p, _ := Fake{}.Score(ctx, poor)
	if a.Score <= p.Score || a.Score > 100 || p.Score < 0 {
		t.Fatalf("rich lead %d, poor lead %d", a.Score, p.Score)
	}
	for _, want := range []string{"business email", "company named", "source referral", "notes mention budget", "notes mention demo"} {
		if !strings.Contains(a.Reason, want) {
			t.Fatalf("reason %q lacks %q", a.Reason, want)
		}
	}
	if want := systemPromptTokens + (len(rich.Prompt())+3)/4; a.TokensIn != want || a.TokensOut <= 0 {
		t.Fatalf("tokens %d in (want %d), %d out", a.TokensIn, want, a.TokensOut)
	}
	// Longer text, more tokens.
	long := rich
	long.Notes += strings.Repeat(" more words", 50)
	l, _ := Fake{}.Score(ctx, long)
	if l.TokensIn <= a.TokensIn {
		t.Fatalf("longer input %d tokens, shorter %d", l.TokensIn, a.TokensIn)
	}
	// Every field is clamped into range.
	capped := Input{Name: "x", Email: "a@b.sa", Company: "c", Source: "referral", Notes: strings.Repeat("budget demo pilot urgent contract ", 40)}
	if m, _ := (Fake{}).Score(ctx, capped); m.Score != 100 {
		t.Fatalf("score %d, want the 100 cap", m.Score)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (Fake{}).Score(cancelled, rich); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestHashKeysTheCache(t *testing.T) {
	in := Input{Name: "A", Company: "B"}
	if in.Hash("m") != in.Hash("m") || len(in.Hash("m")) != 64 {
		t.Fatal("hash not stable")
	}
	if in.Hash("m") == in.Hash("n") {
		t.Fatal("two models share a cache entry")
	}
	if in.Hash("m") == (Input{Name: "A", Notes: "B"}).Hash("m") {
		t.Fatal("a field's value moved to another field keeps the key")
	}
}

func TestParsePrices(t *testing.T) {
	got, err := ParsePrices(" a=0.5/1.5, b=2 ,")
	if err != nil || len(got) != 2 || got["a"] != (Price{"0.5", "1.5"}) || got["b"] != (Price{"2", "2"}) {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := ParsePrices(""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"a", "=1", "a=-1", "a=1/x", "a=1e3", "a=1,a=2", "a=0.123456789"} {
		if _, err := ParsePrices(bad); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), EnvPrices) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := ConfigFromEnv(env(nil))
	if err != nil || c.AlertURL != "" || c.Prices[FakeModelName] != DefaultPrices[FakeModelName] {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if d, _ := c.withDefaults(); d.AlertUSD != DefaultAlertUSD {
		t.Fatalf("default threshold %q", d.AlertUSD)
	}
	c, err = ConfigFromEnv(env(map[string]string{EnvAlertUSD: "2.50", EnvAlertURL: "http://127.0.0.1:9/hook", EnvPrices: FakeModelName + "=1"}))
	if err != nil || c.AlertUSD != "2.50" || c.Prices[FakeModelName] != (Price{"1", "1"}) {
		t.Fatalf("%+v %v", c, err)
	}
	for name, bad := range map[string]map[string]string{
		EnvAlertUSD: {EnvAlertUSD: "ten"},
		EnvAlertURL: {EnvAlertURL: "ftp://example"},
		EnvPrices:   {EnvPrices: "x"},
	} {
		if _, err := ConfigFromEnv(env(bad)); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := (Config{Model: Fake{}, Prices: map[string]Price{"other": {"1", "1"}}}).withDefaults(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unpriced model: %v", err)
	}
}

func TestParseWindow(t *testing.T) {
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	from, to, err := parseWindow(httptest.NewRequest("GET", "/admin/costs?from=2026-01-01&to=2026-01-07", nil))
	if err != nil || !from.Equal(at("2026-01-01T00:00:00Z")) || !to.Equal(at("2026-01-08T00:00:00Z")) {
		t.Fatalf("dates: %v %v %v", from, to, err)
	}
	from, to, err = parseWindow(httptest.NewRequest("GET", "/admin/costs?from=2026-01-01T09:00:00%2B03:00&to=2026-01-01T10:00:00Z", nil))
	if err != nil || !from.Equal(at("2026-01-01T06:00:00Z")) || !to.Equal(at("2026-01-01T10:00:00Z")) {
		t.Fatalf("times: %v %v %v", from, to, err)
	}
	if from, to, err = parseWindow(httptest.NewRequest("GET", "/admin/costs", nil)); err != nil || from != nil || to != nil {
		t.Fatalf("none: %v %v %v", from, to, err)
	}
	for _, q := range []string{"from=x", "to=2026-13-01", "from=2026-01-02&to=2026-01-01", "from=2024-01-01&to=2026-01-01", "foo=1", "from=2026-01-01&from=2026-01-02", "%%"} {
		_, _, err := parseWindow(httptest.NewRequest("GET", "/admin/costs?"+q, nil))
		var he *httpx.Error
		if !errors.As(err, &he) || he.Status != 400 {
			t.Fatalf("%q: %v", q, err)
		}
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"from=2026-01-01", "to=2026-01-01T00:00:00Z", "from=2026-01-01&to=2025-01-01", "x=%ff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := httptest.NewRequest("GET", "/admin/costs", nil)
		r.URL.RawQuery = q
		from, to, err := parseWindow(r)
		if err != nil {
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != 400 {
				t.Fatalf("%q: %v", q, err)
			}
			return
		}
		if from != nil && to != nil && (!from.Before(*to) || to.Sub(*from) > MaxWindow) {
			t.Fatalf("%q: accepted %v .. %v", q, from, to)
		}
	})
}

func TestTrimZeros(t *testing.T) {
	for in, want := range map[string]string{"1.50000000": "1.5", "2.00000000": "2", "10": "10", "0.00000000": "0", "100.10": "100.1"} {
		if got := trimZeros(in); got != want {
			t.Fatalf("%s: %s, want %s", in, got, want)
		}
	}
}
