package tenancy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

var authSentinels = []error{tenancy.ErrNoCredentials, tenancy.ErrMalformedCredentials}

func FuzzParseAuthorization(f *testing.F) {
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer abc", "bearer abc.def.ghi", "BEARER  x==", "Bearer a=b",
		"Basic dXNlcjpwYXNz", "Bearer " + strings.Repeat(".", 100), "Bearer \x00", "Bearer é",
		"Bearer dlx_" + strings.Repeat("a", 39) + "_" + strings.Repeat("b", 52), "Bearer ===",
	} {
		f.Add(seed, 64)
	}
	f.Fuzz(func(t *testing.T, value string, maxBytes int) {
		token, err := tenancy.ParseAuthorization(value, maxBytes)
		if err != nil {
			if !isOneOf(err, authSentinels) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if token != "" {
				t.Fatalf("token %q returned with an error", token)
			}
			return
		}
		limit := maxBytes
		if limit <= 0 {
			limit = tenancy.DefaultMaxHeaderBytes
		}
		if len(value) > limit {
			t.Fatalf("accepted %d bytes over the cap %d", len(value), limit)
		}
		if token == "" || !strings.HasSuffix(value, token) || strings.ContainsAny(token, " \t\r\n\"\\,;") {
			t.Fatalf("bad token %q from %q", token, value)
		}
	})
}

func FuzzParseAPIKey(f *testing.F) {
	valid := "dlx_" + strings.Repeat("a", 39) + "_" + strings.Repeat("b", 52)
	for _, seed := range []string{
		"", "dlx", "dlx_", valid, strings.ToUpper(valid), "x" + valid, valid + "c",
		"dlx_" + strings.Repeat("7", 39) + "_" + strings.Repeat("2", 52),
		"dlx_" + strings.Repeat("a", 38) + "b_" + strings.Repeat("b", 52),
		"Bearer " + valid, " " + valid + " ",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		tenant, prefix, err := tenancy.ParseAPIKey(key)
		if err != nil {
			if !errors.Is(err, tenancy.ErrInvalidAPIKey) || tenant != "" || prefix != "" {
				t.Fatalf("ParseAPIKey(%q) = %q, %q, %v", key, tenant, prefix, err)
			}
		} else {
			if canonical, perr := rls.ParseTenant(tenant); perr != nil || canonical != tenant {
				t.Fatalf("tenant %q is not a canonical UUID", tenant)
			}
			if !strings.HasPrefix(key, prefix+"_") || len(key) != len(prefix)+1+52 {
				t.Fatalf("prefix %q is not the start of %q", prefix, key)
			}
		}
		headerKey, herr := tenancy.ParseAPIKeyHeader(key, 0)
		if herr == nil && headerKey != strings.Trim(key, " \t") {
			t.Fatalf("header key %q from %q", headerKey, key)
		}
		if herr != nil && !isOneOf(herr, append(authSentinels, tenancy.ErrInvalidAPIKey)) {
			t.Fatalf("header error %v wraps no sentinel", herr)
		}
	})
}

// FuzzJWTMiddleware sends arbitrary Authorization headers through the JWT
// middleware: the answer is 200 only for a genuinely signed token, 401 or
// 403 otherwise, never a panic or a 500.
func FuzzJWTMiddleware(f *testing.F) {
	testKeys(f)
	valid := sign(f, jwt.SigningMethodRS256, "rsa-1", rsaKey, validClaims())
	for _, seed := range []string{
		"", "Bearer " + valid, "Bearer " + valid[:len(valid)-4], "Bearer " + strings.Replace(valid, ".", "..", 1),
		"Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer a.b.c", "Bearer " + strings.Repeat(".", 9000),
		"Bearer " + sign(f, jwt.SigningMethodHS256, "hs-1", hmacSecret, jwt.MapClaims{"exp": 1}),
	} {
		f.Add(seed)
	}
	verifier := newVerifier(f)
	handler := verifier.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := tenancy.PrincipalFrom(r.Context()); !ok {
			w.Header().Set("X-Bug", "no principal")
		}
	}))
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
		req.Header["Authorization"] = []string{header}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			token, err := tenancy.ParseAuthorization(header, 0)
			if err != nil || rec.Header().Get("X-Bug") != "" {
				t.Fatalf("admitted %q", header)
			}
			if _, err := verifier.Verify(context.Background(), token); err != nil {
				t.Fatalf("admitted %q", header)
			}
		case http.StatusUnauthorized, http.StatusForbidden:
			if rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("status %d without problem+json", rec.Code)
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, header)
		}
	})
}

func isOneOf(err error, sentinels []error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
