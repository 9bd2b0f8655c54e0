package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzzers check two properties of every header parser: it never panics
// and returns only the package's errors, and it accepts nothing that does
// not carry the MAC an independent computation expects.

var (
	fuzzNow  = time.Unix(1700000000, 0)
	fuzzBody = []byte(`{"id":"evt_1","amount":100}`)
	fuzzKey  = "fuzz-secret"
)

func fuzzClock() time.Time { return fuzzNow }

// requireKnownError fails unless err is one of the verification sentinels.
func requireKnownError(t *testing.T, err error) {
	t.Helper()
	for _, known := range []error{ErrMissingHeader, ErrMalformedHeader, ErrMalformedBody, ErrBadSignature, ErrStaleTimestamp, ErrUnknownKey} {
		if errors.Is(err, known) {
			var typed *Error
			if !errors.As(err, &typed) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
	}
	t.Fatalf("unexpected error %v", err)
}

func hmacHex(key string, parts ...string) string {
	mac := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

func hmacB64(key []byte, parts ...string) string {
	mac := hmac.New(sha256.New, key)
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// tvCarriesMAC reports whether header has some "t=<x>" and a "v1=" equal
// to the MAC of "<x>.<body>".
func tvCarriesMAC(header string, body []byte) bool {
	for part := range strings.SplitSeq(header, ",") {
		if ts, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			if strings.Contains(strings.ToLower(header), "v1="+hmacHex(fuzzKey, ts, ".", string(body))) {
				return true
			}
		}
	}
	return false
}

func fuzzTV(f *testing.F, header string, v Verifier) {
	ts := "1700000000"
	valid := "t=" + ts + ",v1=" + hmacHex(fuzzKey, ts, ".", string(fuzzBody))
	for _, seed := range []string{valid, valid + ",v1=" + strings.Repeat("0", 64), valid + ",v0=abc", "t=1700000000",
		"t=,v1=", "v1=" + strings.Repeat("a", 64), "t=1700000000,t=1700000000", ",", "=", "t=01700000000,v1=00", "t=99999999999999999999,v1=0", ""} {
		f.Add(seed, false)
	}
	f.Add(valid, true)
	f.Fuzz(func(t *testing.T, value string, tamper bool) {
		body := fuzzBody
		if tamper {
			body = append([]byte("x"), fuzzBody...)
		}
		_, err := v.Verify(&Message{Method: "POST", Header: http.Header{header: {value}}, Body: body})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		if !tvCarriesMAC(value, body) {
			t.Fatalf("accepted %q without a valid MAC", value)
		}
	})
}

func FuzzStripeSignature(f *testing.F) {
	v, err := NewStripe(StripeConfig{Secrets: []string{fuzzKey}, Now: fuzzClock})
	if err != nil {
		f.Fatal(err)
	}
	fuzzTV(f, StripeSignatureHeader, v)
}

func FuzzCalendlySignature(f *testing.F) {
	v, err := NewCalendly(CalendlyConfig{Secrets: []string{fuzzKey}, Now: fuzzClock})
	if err != nil {
		f.Fatal(err)
	}
	fuzzTV(f, CalendlySignatureHeader, v)
}

func FuzzStandardSignatures(f *testing.F) {
	key := []byte(fuzzKey)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	v, err := NewStandard(StandardConfig{Secrets: []string{secret}, Now: fuzzClock})
	if err != nil {
		f.Fatal(err)
	}
	valid := "v1," + hmacB64(key, "msg_1", ".", "1700000000", ".", string(fuzzBody))
	for _, seed := range []string{valid, "v1a,abc " + valid, "v1,", "v1", " ", valid + " ", "v2," + valid[3:], "v1,====", ","} {
		f.Add("msg_1", "1700000000", seed)
	}
	f.Add("msg_1", "+1700000000", valid)
	f.Add("", "1700000000", valid)
	f.Fuzz(func(t *testing.T, id, ts, list string) {
		h := http.Header{}
		h.Set(StandardIDHeader, id)
		h.Set(StandardTimestampHeader, ts)
		h.Set(StandardSignatureHeader, list)
		_, err := v.Verify(&Message{Header: h, Body: fuzzBody})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		want := "v1," + hmacB64(key, id, ".", ts, ".", string(fuzzBody))
		if !strings.Contains(" "+list+" ", " "+want+" ") {
			t.Fatalf("accepted %q %q %q without a valid MAC", id, ts, list)
		}
	})
}

func FuzzHubSpotHeaders(f *testing.F) {
	v, err := NewHubSpot(HubSpotConfig{Secrets: []string{fuzzKey}, Now: fuzzClock, Legacy: true})
	if err != nil {
		f.Fatal(err)
	}
	const url = "https://h.example/p?a=b%3Ac"
	ms := "1700000000000"
	v3 := hmacB64([]byte(fuzzKey), "POST", "https://h.example/p?a=b:c", string(fuzzBody), ms)
	sum := sha256.Sum256([]byte(fuzzKey + string(fuzzBody)))
	v1 := hex.EncodeToString(sum[:])
	f.Add(v3, ms, "", "", url)
	f.Add(v3, "1700000000", "", "", url)
	f.Add("", "", v1, "v1", url)
	f.Add("", "", v1, "v2", url)
	f.Add("", "", strings.ToUpper(v1), "v1", url)
	f.Add("", "", v1, "v3", "%")
	f.Add("abc=", ms, "", "", "%3")
	f.Fuzz(func(t *testing.T, sigV3, ts, legacySig, version, uri string) {
		h := http.Header{}
		for name, value := range map[string]string{HubSpotSignatureV3Header: sigV3, HubSpotTimestampHeader: ts,
			HubSpotSignatureHeader: legacySig, HubSpotVersionHeader: version} {
			if value != "" {
				h.Set(name, value)
			}
		}
		_, err := v.Verify(&Message{Method: "POST", URL: uri, Header: h, Body: fuzzBody})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		var ok bool
		switch {
		case sigV3 != "":
			ok = sigV3 == hmacB64([]byte(fuzzKey), "POST", HubSpotDecodeURI(uri), string(fuzzBody), ts)
		case version == "v1":
			s := sha256.Sum256([]byte(fuzzKey + string(fuzzBody)))
			ok = strings.EqualFold(legacySig, hex.EncodeToString(s[:]))
		case version == "v2":
			s := sha256.Sum256([]byte(fuzzKey + "POST" + uri + string(fuzzBody)))
			ok = strings.EqualFold(legacySig, hex.EncodeToString(s[:]))
		}
		if !ok {
			t.Fatalf("accepted %q %q %q %q %q without a valid MAC", sigV3, ts, legacySig, version, uri)
		}
	})
}

func FuzzGitHubSignature(f *testing.F) {
	v, err := NewGitHub(GitHubConfig{Secrets: []string{fuzzKey}})
	if err != nil {
		f.Fatal(err)
	}
	valid := "sha256=" + hmacHex(fuzzKey, string(fuzzBody))
	for _, seed := range []string{valid, strings.ToUpper(valid), "sha256=", "sha1=" + valid[7:], valid + "0", "sha256=zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		_, err := v.Verify(&Message{Header: http.Header{GitHubSignatureHeader: {value}}, Body: fuzzBody})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		if !strings.EqualFold(strings.TrimPrefix(value, "sha256="), hmacHex(fuzzKey, string(fuzzBody))) || !strings.HasPrefix(value, "sha256=") {
			t.Fatalf("accepted %q without a valid MAC", value)
		}
	})
}

func FuzzSlackHeaders(f *testing.F) {
	v, err := NewSlack(SlackConfig{Secrets: []string{fuzzKey}, Now: fuzzClock})
	if err != nil {
		f.Fatal(err)
	}
	valid := "v0=" + hmacHex(fuzzKey, "v0:", "1700000000", ":", string(fuzzBody))
	for _, seed := range []string{valid, "v1=" + valid[3:], "v0=", "=", "v0"} {
		f.Add("1700000000", seed)
	}
	f.Add("-1700000000", valid)
	f.Fuzz(func(t *testing.T, ts, sig string) {
		h := http.Header{SlackTimestampHeader: {ts}, SlackSignatureHeader: {sig}}
		_, err := v.Verify(&Message{Header: h, Body: fuzzBody})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		if !strings.EqualFold(sig, "v0="+hmacHex(fuzzKey, "v0:", ts, ":", string(fuzzBody))) || !strings.HasPrefix(sig, "v0=") {
			t.Fatalf("accepted %q %q without a valid MAC", ts, sig)
		}
	})
}

func FuzzMoyasarBody(f *testing.F) {
	v, err := NewMoyasar(MoyasarConfig{Tokens: []string{fuzzKey}})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{`{"id":"1","secret_token":"fuzz-secret"}`, `{"secret_token":"fuzz-secret "}`, `{"secret_token":null}`, `[]`, `{`, `{"secret_token":"fuzz-secret","secret_token":"x"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := v.Verify(&Message{Body: body})
		if err != nil {
			requireKnownError(t, err)
			return
		}
		if d.ID == "" {
			t.Fatalf("accepted %q without a replay key", body)
		}
		var event struct {
			Token string `json:"secret_token"`
		}
		if json.Unmarshal(body, &event) != nil || event.Token != fuzzKey {
			t.Fatalf("accepted %q without the token", body)
		}
	})
}

func FuzzHubSpotDecodeURI(f *testing.F) {
	for _, seed := range []string{"https://a/b%3Ac", "%", "%%", "%3", "%3a%2F%zz", "plain"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		got := HubSpotDecodeURI(uri)
		if len(got) > len(uri) {
			t.Fatalf("decoding grew %q to %q", uri, got)
		}
		if !strings.Contains(uri, "%") && got != uri {
			t.Fatalf("changed %q without escapes", uri)
		}
	})
}

// The fast path for Stripe's event id agrees with the JSON decoder.
func FuzzTopLevelID(f *testing.F) {
	for _, seed := range []string{`{"id":"evt_1","object":"event"}`, ` { "id" : "evt_2" }`, `{"object":"event","id":"evt_3"}`,
		`{"id":"a\"b"}`, `{"id":"\u00e9"}`, `{"id":7}`, `[]`, `{"id":"x`, "{\"id\":\"\x01\"}", `{"id":"é"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ok := leadingID(body)
		if !ok || !utf8.ValidString(fast) {
			return // the decoder replaces invalid bytes; the id only keys the replay guard
		}
		if slow := decodeID(body); slow != fast {
			t.Fatalf("decoder %q != fast path %q", slow, fast)
		}
	})
}

// decodeHex32 agrees with encoding/hex for every byte value at every
// position of a 64-digit signature.
func TestDecodeHex32EveryByte(t *testing.T) {
	digits := strings.Repeat("0123456789abcdefABCDEF", 3)[:2*sha256.Size]
	for pos := range len(digits) {
		for c := range 256 {
			s := digits[:pos] + string([]byte{byte(c)}) + digits[pos+1:]
			var got [sha256.Size]byte
			ok := decodeHex32(&got, s)
			want, err := hex.DecodeString(s)
			if ok != (err == nil) || (ok && string(got[:]) != string(want)) {
				t.Fatalf("decodeHex32(%q) = %x, %v; encoding/hex: %x, %v", s, got, ok, want, err)
			}
		}
	}
}

// The allocation-free decoders agree with the standard library's.
func FuzzDecoders(f *testing.F) {
	for _, seed := range []string{"0", "1700000000", "9223372036854775807", "9223372036854775808", "99999999999999999999",
		"000000000000000000001700000000", "+1", "-1", "1_0", "", strings.Repeat("a", 64), strings.Repeat("A", 64),
		strings.Repeat("g", 64), strings.Repeat("0", 63)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := parseUnsigned(s)
		want, err := strconv.ParseInt(s, 10, 64)
		wantOK := err == nil && s != "" && s[0] >= '0' && s[0] <= '9'
		if ok != wantOK || (ok && n != want) {
			t.Fatalf("parseUnsigned(%q) = %d, %v; strconv: %d, %v", s, n, ok, want, wantOK)
		}
		var sig [sha256.Size]byte
		ok = decodeHex32(&sig, s)
		dec, err := hex.DecodeString(s)
		wantOK = err == nil && len(dec) == sha256.Size
		if ok != wantOK || (ok && string(sig[:]) != string(dec)) {
			t.Fatalf("decodeHex32(%q) = %x, %v; encoding/hex: %x, %v", s, sig, ok, dec, wantOK)
		}
	})
}
