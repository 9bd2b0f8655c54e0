package leads

import (
	"errors"
	"net/http"
	"testing"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// clientError reports whether err is a client-facing 4xx: the parsers'
// only kind of failure.
func clientError(err error) bool {
	var e *httpx.Error
	return errors.As(err, &e) && e.Status >= 400 && e.Status < 500
}

func FuzzParseIfMatch(f *testing.F) {
	for _, s := range []string{`"v1"`, `*`, `W/"v1"`, `"v1", "v2"`, `v1`, `""`, `"v"`, `"v-1"`, `"v99999999999999999999"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		versions, _, err := parseIfMatch([]string{s})
		if err != nil && !clientError(err) {
			t.Fatalf("%q: %v", s, err)
		}
		for _, v := range versions {
			if v <= 0 {
				t.Fatalf("%q: version %d", s, v)
			}
		}
	})
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(httpx.Cursor{ID: "0d3a1c5e-5a1e-4d0c-9e11-000000000001"}.Encode())
	f.Add("eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJpZCI6InVybjp1dWlkOjBkM2ExYzVlLTVhMWUtNGQwYy05ZTExLTAwMDAwMDAwMDAwMSJ9")
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := httpx.DecodeCursor(s)
		if err != nil {
			if !clientError(err) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		// What reaches SQL is a canonical UUID and a real time.
		if len(c.ID) != 36 || c.CreatedAt.IsZero() {
			t.Fatalf("%q decoded to %+v", s, c)
		}
	})
}

func TestParseIfMatch(t *testing.T) {
	if _, _, err := parseIfMatch(nil); !clientError(err) || err.(*httpx.Error).Status != http.StatusPreconditionRequired {
		t.Fatalf("no If-Match: %v", err)
	}
	v, star, err := parseIfMatch([]string{`W/"v3", "v2"`, `"other"`})
	if err != nil || star || len(v) != 1 || v[0] != 2 {
		t.Fatalf("%v %v %v", v, star, err)
	}
}
