package webhooksig

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// HubSpot header names.
const (
	HubSpotSignatureV3Header = "X-HubSpot-Signature-v3"
	HubSpotTimestampHeader   = "X-HubSpot-Request-Timestamp"
	HubSpotSignatureHeader   = "X-HubSpot-Signature"
	HubSpotVersionHeader     = "X-HubSpot-Signature-Version"
)

// HubSpotConfig configures a HubSpot verifier.
type HubSpotConfig struct {
	// Name is the verifier's name. Default "hubspot".
	Name string
	// Secrets are the app's active client secrets. Required.
	Secrets []string
	// Legacy also accepts the older v1 and v2 signatures (X-HubSpot-Signature
	// with X-HubSpot-Signature-Version). Default false: they sign no
	// timestamp, so a captured request stays valid for ever and only the
	// replay guard stops it.
	Legacy bool
	// Tolerance is how far X-HubSpot-Request-Timestamp may lie from now,
	// in either direction. Default 5 minutes (HubSpot's).
	Tolerance time.Duration
	// Now returns the current time. Default: the system's wall clock
	// (time.Now), read at most every 100 ms while the verifier is used.
	Now func() time.Time
}

// HubSpot verifies HubSpot's request signatures. Version 3: the base64
// HMAC-SHA256 of method + URI + body + X-HubSpot-Request-Timestamp (in
// milliseconds), with the URI's documented percent-encodings decoded first.
// With Legacy, version 1 (hex SHA-256 of secret + body) and version 2 (hex
// SHA-256 of secret + method + URI + body) too.
type HubSpot struct {
	name    string
	keys    *keyring
	secrets [][]byte // raw, for the v1 and v2 digests
	legacy  bool
	timing
}

// NewHubSpot returns a HubSpot verifier, or an error wrapping ErrInvalidConfig.
func NewHubSpot(cfg HubSpotConfig) (*HubSpot, error) {
	keys, err := stringSecrets("hubspot", cfg.Secrets)
	if err != nil {
		return nil, err
	}
	t, err := newTiming(cfg.Now, cfg.Tolerance, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	return &HubSpot{name: cmp.Or(cfg.Name, "hubspot"), keys: newKeyring(keys), secrets: keys, legacy: cfg.Legacy, timing: t}, nil
}

// Name implements Verifier.
func (h *HubSpot) Name() string { return h.name }

// Verify implements Verifier. A v3 header takes precedence; without one,
// and with Legacy, the v1/v2 header is checked. HubSpot sends no delivery
// id; the id is a digest of the verified signature.
func (h *HubSpot) Verify(m *Message) (Delivery, error) {
	if len(m.Header[canonicalHeaders[HubSpotSignatureV3Header]]) > 0 || !h.legacy {
		return h.verifyV3(m)
	}
	return h.verifyLegacy(m)
}

func (h *HubSpot) verifyV3(m *Message) (Delivery, error) {
	value, err := singleHeader(h.name, m.Header, HubSpotSignatureV3Header)
	if err != nil {
		return Delivery{}, err
	}
	rawTime, err := singleHeader(h.name, m.Header, HubSpotTimestampHeader)
	if err != nil {
		return Delivery{}, err
	}
	millis, ok := parseUnsigned(rawTime)
	if !ok {
		return Delivery{}, fail(h.name, HubSpotTimestampHeader, ErrMalformedHeader)
	}
	var sigs sigList
	if !decodeBase64Sig(&sigs, value) {
		return Delivery{}, fail(h.name, HubSpotSignatureV3Header, ErrMalformedHeader)
	}
	ts := time.UnixMilli(millis)
	if err := checkTimestamp(h.name, HubSpotTimestampHeader, h.now(), ts, h.tolerance); err != nil {
		return Delivery{}, err
	}
	uri := HubSpotDecodeURI(m.URL)
	if _, ok := h.keys.match(&sigs, []string{m.Method, uri}, m.Body, rawTime); !ok {
		return Delivery{}, fail(h.name, HubSpotSignatureV3Header, ErrBadSignature)
	}
	return Delivery{Verifier: h.name, ID: signatureID(sigs.at(0)), Timestamp: ts}, nil
}

func (h *HubSpot) verifyLegacy(m *Message) (Delivery, error) {
	value, err := singleHeader(h.name, m.Header, HubSpotSignatureHeader)
	if err != nil {
		return Delivery{}, err
	}
	version, err := singleHeader(h.name, m.Header, HubSpotVersionHeader)
	if err != nil {
		return Delivery{}, err
	}
	if version != "v1" && version != "v2" {
		return Delivery{}, fail(h.name, HubSpotVersionHeader, ErrUnknownKey)
	}
	sig, err := decodeHex(value, sha256.Size)
	if err != nil {
		return Delivery{}, fail(h.name, HubSpotSignatureHeader, ErrMalformedHeader)
	}
	expected := make([][]byte, len(h.secrets))
	for i, key := range h.secrets {
		expected[i] = hubspotLegacyDigest(version, key, m.Method, m.URL, m.Body)
	}
	if _, ok := anyEqual(expected, [][]byte{sig}); !ok {
		return Delivery{}, fail(h.name, HubSpotSignatureHeader, ErrBadSignature)
	}
	return Delivery{Verifier: h.name, ID: signatureID(sig)}, nil
}

// hubspotV3Prefix is what precedes the body in the signed string:
// method + URI (the timestamp follows the body).
func hubspotV3Prefix(method, uri string) []byte {
	return append([]byte(method), uri...)
}

func hubspotLegacyDigest(version string, secret []byte, method, uri string, body []byte) []byte {
	sum := sha256.New()
	sum.Write(secret)
	if version == "v2" {
		sum.Write([]byte(method))
		sum.Write([]byte(uri))
	}
	sum.Write(body)
	return sum.Sum(nil)
}

// hubspotDecoded lists the percent-encodings HubSpot decodes in the URI
// before signing it (v3); all others stay encoded.
var hubspotDecoded = map[string]byte{
	"3A": ':', "2F": '/', "3F": '?', "40": '@', "21": '!', "24": '$',
	"27": '\'', "28": '(', "29": ')', "2A": '*', "2C": ',', "3B": ';',
}

// HubSpotDecodeURI decodes in uri the percent-encodings HubSpot decodes
// before signing a v3 request (%3A, %2F, %3F, %40, %21, %24, %27, %28, %29,
// %2A, %2C, %3B, in either case) and leaves every other byte as it is.
func HubSpotDecodeURI(uri string) string {
	if !strings.Contains(uri, "%") {
		return uri
	}
	var b strings.Builder
	b.Grow(len(uri))
	for i := 0; i < len(uri); i++ {
		if uri[i] == '%' && i+2 < len(uri) {
			if c, ok := hubspotDecoded[strings.ToUpper(uri[i+1:i+3])]; ok {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(uri[i])
	}
	return b.String()
}

// SignHubSpotV3 returns the X-HubSpot-Request-Timestamp (milliseconds) and
// X-HubSpot-Signature-v3 values for a request to uri at t.
func SignHubSpotV3(secret, method, uri string, body []byte, t time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.UnixMilli(), 10)
	mac := macOf([]byte(secret), hubspotV3Prefix(method, HubSpotDecodeURI(uri)), body, []byte(timestamp))
	return timestamp, base64.StdEncoding.EncodeToString(mac)
}

// SignHubSpotV1 returns the X-HubSpot-Signature value of version 1: the hex
// SHA-256 of secret + body.
func SignHubSpotV1(secret string, body []byte) string {
	return hex.EncodeToString(hubspotLegacyDigest("v1", []byte(secret), "", "", body))
}

// SignHubSpotV2 returns the X-HubSpot-Signature value of version 2: the hex
// SHA-256 of secret + method + URI + body.
func SignHubSpotV2(secret, method, uri string, body []byte) string {
	return hex.EncodeToString(hubspotLegacyDigest("v2", []byte(secret), method, uri, body))
}
