package idempotency_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	valid := map[string]string{
		`abc`:                                 "abc",
		`  abc	`:                              "abc",
		`"abc"`:                               "abc",
		`"8e03978e-40d5-43e8"`:                "8e03978e-40d5-43e8",
		`"with space"`:                        "with space",
		`"esc\"aped\\"`:                       `esc"aped\`,
		`a"b`:                                 `a"b`,
		strings.Repeat("k", 255):              strings.Repeat("k", 255),
		`"` + strings.Repeat("k", 255) + `"`:  strings.Repeat("k", 255),
		`"` + strings.Repeat(`\"`, 255) + `"`: strings.Repeat(`"`, 255),
	}
	for in, want := range valid {
		got, err := idempotency.ParseKey(in)
		require.NoError(t, err, "%q", in)
		require.Equal(t, want, got, "%q", in)
		require.NoError(t, idempotency.ValidKey(got))
	}
	invalid := []string{
		"", "   ", `""`, `"`, `"abc`, `"abc"x`, `"abc";p=1`, `"a\nb"`, `"a\`,
		strings.Repeat("k", 256), `"` + strings.Repeat("k", 256) + `"`,
		"a b", "a\x00b", "a\x7fb", "caf\u00e9", "\"a\x01b\"", "\"a\tb\"", "\"caf\u00e9\"",
	}
	for _, in := range invalid {
		_, err := idempotency.ParseKey(in)
		require.ErrorIs(t, err, idempotency.ErrInvalidKey, "%q", in)
	}
}

// FuzzParseKey: the parser never panics, and whatever it accepts is a
// storable key that reads back the same from its quoted form.
func FuzzParseKey(f *testing.F) {
	for _, seed := range []string{
		"abc", `"abc"`, `"esc\"aped\\"`, "", `""`, `"`, `"a\`, `"a"b`, "a\tb", "\"a\x01\"",
		strings.Repeat("k", 255), strings.Repeat("k", 256), " \"x\" ", "caf\u00e9", `"a";b`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		key, err := idempotency.ParseKey(in)
		if err != nil {
			require.ErrorIs(t, err, idempotency.ErrInvalidKey)
			require.Empty(t, key)
			return
		}
		require.NoError(t, idempotency.ValidKey(key))
		quoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key) + `"`
		again, err := idempotency.ParseKey(quoted)
		require.NoError(t, err)
		require.Equal(t, key, again)
	})
}

func TestFingerprintSeparatesFields(t *testing.T) {
	t.Parallel()
	base := idempotency.FingerprintRequest("POST", "/a?x=1", "application/json", []byte("{}"))
	require.Equal(t, base, idempotency.FingerprintRequest("POST", "/a?x=1", "application/json", []byte("{}")))
	require.Len(t, base.String(), 64)
	for name, other := range map[string]idempotency.Fingerprint{
		"method":       idempotency.FingerprintRequest("PUT", "/a?x=1", "application/json", []byte("{}")),
		"query":        idempotency.FingerprintRequest("POST", "/a?x=2", "application/json", []byte("{}")),
		"content type": idempotency.FingerprintRequest("POST", "/a?x=1", "text/plain", []byte("{}")),
		"body":         idempotency.FingerprintRequest("POST", "/a?x=1", "application/json", []byte("{ }")),
		"shifted":      idempotency.FingerprintRequest("POS", "T/a?x=1", "application/json", []byte("{}")),
		"shifted end":  idempotency.FingerprintRequest("POST", "/a?x=1", "application/json{", []byte("}")),
	} {
		require.NotEqual(t, base, other, name)
	}
}

// TestControlCharacterInHeaderIs400 sends a raw request whose key holds a
// control character, which no Go client would send: it is refused with 400
// and the handler never runs.
func TestControlCharacterInHeaderIs400(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var runs atomic.Int32
	srv := b.server(t, idempotency.Config{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) }))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\n" + tenantHeader + ": " + tenantA +
		"\r\nIdempotency-Key: \"a\x01b\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"))
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Zero(t, runs.Load())
	require.Equal(t, 0, countKeys(t, b.db))
}
