package bench

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// TestMinimumSidesVerify checks that the minimum sides are verifiers: they
// accept the signed delivery and refuse it once its signature, its
// timestamp or (Standard Webhooks) its id is changed.
func TestMinimumSidesVerify(t *testing.T) {
	for _, scheme := range []string{"Stripe", "Standard"} {
		t.Run(scheme, func(t *testing.T) {
			now := time.Now()
			run, h := minimumSide(t, scheme, now)
			if err := run(); err != nil {
				t.Fatalf("signed delivery refused: %v", err)
			}
			for name, value := range h {
				original := value[0]
				for _, changed := range tamperings(original) {
					h[name] = []string{changed}
					if run() == nil {
						t.Errorf("%s %q accepted", name, changed)
					}
				}
				h[name] = []string{original}
			}
		})
	}
}

// tamperings returns value with its last byte changed and value with its
// first digit changed, each different from value.
func tamperings(value string) []string {
	last := value[len(value)-1]
	out := []string{value[:len(value)-1] + string(last^1)}
	if i := strings.IndexAny(value, "0123456789"); i >= 0 {
		out = append(out, value[:i]+string('0'+(value[i]-'0'+1)%10)+value[i+1:])
	}
	return out
}

// minimumSide returns the minimum side of scheme for a delivery signed at
// now, and the headers it reads: its own, which the caller may change.
func minimumSide(tb testing.TB, scheme string, now time.Time) (func() error, http.Header) {
	tb.Helper()
	ts := strconv.FormatInt(now.Unix(), 10)
	switch scheme {
	case "Stripe":
		h := http.Header{"Stripe-Signature": {webhooksig.SignStripe(now, payload, stripeSecret)}}
		return stripeMinimum(newMACSide([]byte(stripeSecret), []byte(ts+".")), h, now), h
	case "Standard":
		h := standardHeader(tb, now)
		return standardMinimum(newMACSide(standardKey(tb), []byte("msg_1."+ts+".")), h, now), h
	}
	tb.Fatalf("unknown scheme %q", scheme)
	return nil, nil
}

// standardHeader returns the Standard Webhooks headers of the payload as
// delivery msg_1 signed at now.
func standardHeader(tb testing.TB, now time.Time) http.Header {
	tb.Helper()
	sig, err := webhooksig.SignStandard("msg_1", now, payload, swSecret)
	if err != nil {
		tb.Fatal(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

// standardKey returns the HMAC key of swSecret.
func standardKey(tb testing.TB) []byte {
	tb.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(swSecret, "whsec_"))
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// The sides of a verification, each checking the same signed 1 KiB payload
// (payload above), once per call:
//
//   - bare: the floor. A sync.Pool of keyed HMAC-SHA256 states for the
//     secret (hmac.New once per pooled state, then Reset, which restores
//     the keyed state without rehashing the key: the key handling
//     webhooksig's verifiers use), Write of the signed prefix (prepared
//     once: "<t>." for Stripe, "<id>.<t>." for Standard Webhooks) and of
//     the body, Sum into the pooled state's array, hmac.Equal with the
//     expected MAC (computed once), Reset and Put. No header is read or
//     decoded and no clock is read.
//   - minimum: the least any verifier of the scheme must do besides the
//     bare side's work, written directly with the standard library: look
//     the signature headers up in the http.Header by their canonical names,
//     parse the timestamp (strconv) and check it against a clock read once
//     before the loop (so no clock cost at all), decode the one signature
//     (encoding/hex or encoding/base64), join the signed prefix from the
//     parsed values, then the bare side's pooled MAC and constant-time
//     compare. It reads no delivery id, accepts one signature only and
//     ignores what a full parser checks, so it is a lower bound: when it
//     is itself above 1.05x the floor, no verifier that reads the
//     headers can reach that.
//   - bare-new: the same with hmac.New per call (the key hashed each time,
//     the state and the sum allocated), what a hand-written check usually
//     does; for reference only.
//   - ours: webhooksig's Stripe or Standard verifier with one secret and
//     its default clock and tolerance, on a *Message carrying the
//     http.Header: header lookup, parse, decode, timestamp check, MAC,
//     constant-time compare, delivery id. The default clock is the
//     system's, read every 100 ms by a timer while the verifier is used.
//   - reference: stripe-go v85 webhook.ValidatePayload(payload, header,
//     secret), or the Standard Webhooks library's Webhook.Verify(payload,
//     header) with its webhook made once.

// macSide is the bare side: pooled keyed HMAC states, as webhooksig keeps
// one pool per secret.
type macSide struct {
	pool   sync.Pool
	prefix []byte
	want   [sha256.Size]byte
}

type pooledMAC struct {
	mac  hash.Hash
	out  [sha256.Size]byte
	head []byte // the minimum side's signed prefix
}

func newMACSide(key, prefix []byte) *macSide {
	s := &macSide{prefix: prefix}
	s.pool.New = func() any { return &pooledMAC{mac: hmac.New(sha256.New, key)} }
	mac := hmac.New(sha256.New, key)
	mac.Write(prefix)
	mac.Write(payload)
	mac.Sum(s.want[:0])
	return s
}

func (s *macSide) verify() error {
	p := s.pool.Get().(*pooledMAC)
	p.mac.Write(s.prefix)
	p.mac.Write(payload)
	p.mac.Sum(p.out[:0])
	ok := hmac.Equal(p.out[:], s.want[:])
	p.mac.Reset()
	s.pool.Put(p)
	if !ok {
		return errors.New("bare: mismatch")
	}
	return nil
}

// errMinimum is the minimum side's one error: it never reports more.
var errMinimum = errors.New("minimum: verification failed")

// matches reports whether sig is the MAC of concat(parts) || payload. It
// joins the parts in the pooled state's buffer and sums into its array, so
// that it allocates nothing, as the bare side.
func (s *macSide) matches(sig []byte, parts ...string) bool {
	p := s.pool.Get().(*pooledMAC)
	head := p.head[:0]
	for _, part := range parts {
		head = append(head, part...)
	}
	p.head = head
	p.mac.Write(head)
	p.mac.Write(payload)
	p.mac.Sum(p.out[:0])
	ok := hmac.Equal(p.out[:], sig)
	p.mac.Reset()
	s.pool.Put(p)
	return ok
}

// withinTolerance is the timestamp check of the minimum sides: now is read
// once, before the loop.
func withinTolerance(now time.Time, unix int64) bool {
	d := now.Unix() - unix
	return d <= 300 && d >= -300
}

// stripeMinimum is the minimum side of the Stripe scheme (see above): one
// "t=<unix>,v1=<hex>" header.
func stripeMinimum(side *macSide, h http.Header, now time.Time) func() error {
	return func() error {
		values := h["Stripe-Signature"]
		if len(values) != 1 {
			return errMinimum
		}
		t, v1, ok := strings.Cut(values[0], ",v1=")
		if !ok || !strings.HasPrefix(t, "t=") {
			return errMinimum
		}
		unix, err := strconv.ParseInt(t[2:], 10, 64)
		if err != nil || !withinTolerance(now, unix) {
			return errMinimum
		}
		var sig [sha256.Size]byte
		if len(v1) != hex.EncodedLen(sha256.Size) {
			return errMinimum
		}
		var digits [2 * sha256.Size]byte
		copy(digits[:], v1)
		if _, err := hex.Decode(sig[:], digits[:]); err != nil {
			return errMinimum
		}
		if !side.matches(sig[:], t[2:], ".") {
			return errMinimum
		}
		return nil
	}
}

// standardMinimum is the minimum side of Standard Webhooks (see above):
// webhook-id, webhook-timestamp and one "v1,<base64>" signature.
func standardMinimum(side *macSide, h http.Header, now time.Time) func() error {
	return func() error {
		ids, times, sigs := h["Webhook-Id"], h["Webhook-Timestamp"], h["Webhook-Signature"]
		if len(ids) != 1 || len(times) != 1 || len(sigs) != 1 {
			return errMinimum
		}
		unix, err := strconv.ParseInt(times[0], 10, 64)
		if err != nil || !withinTolerance(now, unix) {
			return errMinimum
		}
		b64, ok := strings.CutPrefix(sigs[0], "v1,")
		if !ok || len(b64) != base64.StdEncoding.EncodedLen(sha256.Size) {
			return errMinimum
		}
		var encoded [44]byte
		copy(encoded[:], b64)
		var sig [sha256.Size + 1]byte
		if n, err := base64.StdEncoding.Decode(sig[:], encoded[:]); err != nil || n != sha256.Size {
			return errMinimum
		}
		if !side.matches(sig[:sha256.Size], ids[0], ".", times[0], ".") {
			return errMinimum
		}
		return nil
	}
}

// newMACVerify is the bare-new side: hmac.New per call.
func newMACVerify(key, prefix []byte) func() error {
	want := hmac.New(sha256.New, key)
	want.Write(prefix)
	want.Write(payload)
	sum := want.Sum(nil)
	return func() error {
		mac := hmac.New(sha256.New, key)
		mac.Write(prefix)
		mac.Write(payload)
		if !hmac.Equal(mac.Sum(nil), sum) {
			return errors.New("bare-new: mismatch")
		}
		return nil
	}
}

// webhookSides returns the five sides of scheme ("Stripe" or "Standard"),
// bare first, all checking a delivery signed now.
func webhookSides(tb testing.TB, scheme string) []benchSide {
	tb.Helper()
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	minimum, _ := minimumSide(tb, scheme, now)
	switch scheme {
	case "Stripe":
		header := webhooksig.SignStripe(now, payload, stripeSecret)
		v, err := webhooksig.NewStripe(webhooksig.StripeConfig{Secrets: []string{stripeSecret}})
		if err != nil {
			tb.Fatal(err)
		}
		m := &webhooksig.Message{Header: http.Header{"Stripe-Signature": {header}}, Body: payload}
		prefix := []byte(ts + ".")
		return []benchSide{
			{"bare", newMACSide([]byte(stripeSecret), prefix).verify},
			{"minimum", minimum},
			{"bare-new", newMACVerify([]byte(stripeSecret), prefix)},
			{"ours", func() error { _, err := v.Verify(m); return err }},
			{"reference", func() error { return webhook.ValidatePayload(payload, header, stripeSecret) }},
		}
	case "Standard":
		h := standardHeader(tb, now)
		v, err := webhooksig.NewStandard(webhooksig.StandardConfig{Secrets: []string{swSecret}})
		if err != nil {
			tb.Fatal(err)
		}
		ref, err := standardwebhooks.NewWebhook(swSecret)
		if err != nil {
			tb.Fatal(err)
		}
		key := standardKey(tb)
		m := &webhooksig.Message{Header: h, Body: payload}
		prefix := []byte("msg_1." + ts + ".")
		return []benchSide{
			{"bare", newMACSide(key, prefix).verify},
			{"minimum", minimum},
			{"bare-new", newMACVerify(key, prefix)},
			{"ours", func() error { _, err := v.Verify(m); return err }},
			{"reference", func() error { return ref.Verify(payload, h) }},
		}
	}
	tb.Fatalf("unknown scheme %q", scheme)
	return nil
}

// BenchmarkWebhookVerify times each side of each scheme on its own; with
// -benchmem its B/op and allocs/op are one verification's.
//
//	cd bench && go test -run '^$' -bench BenchmarkWebhookVerify -count 6 -benchmem
func BenchmarkWebhookVerify(b *testing.B) {
	for _, scheme := range []string{"Stripe", "Standard"} {
		for _, side := range webhookSides(b, scheme) {
			b.Run(scheme+"/"+side.name, func(b *testing.B) {
				if err := side.run(); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					if err := side.run(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkWebhookRatio runs the sides of one scheme interleaved in one
// loop (blocks of 32 calls per side, the order rotating every block), so
// every side sees the same machine load, and reports each side's ns per
// verification, its allocations per verification (counted before the timed
// loop) and the ratios ours/bare (the goal: at most 1.05), minimum/bare
// (the least any verifier reading the headers costs over the floor),
// ours/minimum and reference/bare. The sides are described above
// webhookSides' helpers.
//
//	cd bench && go test -run '^$' -bench BenchmarkWebhookRatio -count 6
func BenchmarkWebhookRatio(b *testing.B) {
	for _, scheme := range []string{"Stripe", "Standard"} {
		b.Run(scheme, func(b *testing.B) {
			sides := webhookSides(b, scheme)
			interleaveSides(b, 32, sides)
		})
	}
}

// benchSide is one side of an interleaved comparison.
type benchSide struct {
	name string
	run  func() error
}

// interleaveSides runs sides in rounds: one block of block calls per side,
// the order rotating every round, each block timed. It reports per side
// "<name>-ns/op" (mean per call), "<name>-allocs/op" (testing.AllocsPerRun
// before timing) and, for every side after the first, "<name>/<first>":
// the median over rounds of the side's block time over the first side's
// block time in the same round. A burst of load from elsewhere hits one
// round, and the median drops it; timing whole blocks keeps the clock's
// own cost out of calls of a microsecond. When sides named "ours" and
// "minimum" are both present it also reports "ours/minimum", the same
// median of their two blocks. One b.Loop iteration is one round.
func interleaveSides(b *testing.B, block int, sides []benchSide) {
	b.Helper()
	allocs := make([]float64, len(sides))
	for i, s := range sides {
		var err error
		allocs[i] = testing.AllocsPerRun(200, func() {
			if e := s.run(); e != nil {
				err = e
			}
		})
		if err != nil {
			b.Fatalf("%s: %v", s.name, err)
		}
	}
	sums := make([]time.Duration, len(sides))
	ratios := make([][]float64, len(sides))
	ours, minimum := sideIndex(sides, "ours"), sideIndex(sides, "minimum")
	var oursOverMinimum []float64
	round := make([]time.Duration, len(sides))
	rounds := 0
	for b.Loop() {
		for k := range sides {
			i := (k + rounds) % len(sides)
			start := time.Now()
			for range block {
				if err := sides[i].run(); err != nil {
					b.Fatalf("%s: %v", sides[i].name, err)
				}
			}
			round[i] = time.Since(start)
			sums[i] += round[i]
		}
		for i := 1; i < len(sides); i++ {
			ratios[i] = append(ratios[i], float64(round[i])/float64(round[0]))
		}
		if ours >= 0 && minimum >= 0 {
			oursOverMinimum = append(oursOverMinimum, float64(round[ours])/float64(round[minimum]))
		}
		rounds++
	}
	for i, s := range sides {
		b.ReportMetric(float64(sums[i].Nanoseconds())/float64(rounds*block), s.name+"-ns/op")
		b.ReportMetric(allocs[i], s.name+"-allocs/op")
		if i > 0 {
			b.ReportMetric(median(ratios[i]), s.name+"/"+sides[0].name)
		}
	}
	if oursOverMinimum != nil {
		b.ReportMetric(median(oursOverMinimum), "ours/minimum")
	}
}

// sideIndex returns the index of the side called name, or -1.
func sideIndex(sides []benchSide, name string) int {
	for i, s := range sides {
		if s.name == name {
			return i
		}
	}
	return -1
}
