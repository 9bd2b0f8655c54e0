package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dealix/platform/tenancy"
)

func ExampleWithTenant() {
	ctx, err := tenancy.WithTenant(context.Background(), "6F1C1A8E-0000-4000-8000-00000000000A")
	if err != nil {
		panic(err)
	}
	tenant, ok := tenancy.TenantFrom(ctx)
	fmt.Println(tenant, ok)

	_, err = tenancy.WithTenant(context.Background(), "acme' OR 1=1 --")
	fmt.Println(errors.Is(err, tenancy.ErrInvalidTenant))
	// Output:
	// 6f1c1a8e-0000-4000-8000-00000000000a true
	// true
}

func ExampleParseAuthorization() {
	token, err := tenancy.ParseAuthorization("Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", 0)
	fmt.Println(token, err)
	_, err = tenancy.ParseAuthorization("Basic dXNlcjpwYXNz", 0)
	fmt.Println(errors.Is(err, tenancy.ErrMalformedCredentials))
	// Output:
	// eyJhbGciOiJIUzI1NiJ9.e30.sig <nil>
	// true
}

func ExampleJWTVerifier_Handler() {
	secret := []byte("an example secret of at least 32 bytes")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	verifier, err := tenancy.NewJWTVerifier(context.Background(), tenancy.JWTConfig{
		Keys:     []tenancy.Key{{ID: "2026-01", Algorithm: "HS256", Key: secret}},
		Issuer:   "https://auth.example.com",
		Audience: "deals-api",
		Now:      func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(verifier.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := tenancy.PrincipalFrom(r.Context())
		fmt.Fprintf(w, "%s acts for %s", p.Subject, p.TenantID)
	})))
	defer srv.Close()

	token := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://auth.example.com", "aud": "deals-api", "sub": "ada",
		"exp": now.Add(time.Hour).Unix(), "tenant_id": "6f1c1a8e-0000-4000-8000-00000000000a",
	})
	token.Header["kid"] = "2026-01"
	signed, err := token.SignedString(secret)
	if err != nil {
		panic(err)
	}
	for _, auth := range []string{"Bearer " + signed, ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			fmt.Println(res.StatusCode, string(body))
		} else {
			fmt.Println(res.StatusCode, res.Header.Get("WWW-Authenticate"))
		}
	}
	// Output:
	// 200 ada acts for 6f1c1a8e-0000-4000-8000-00000000000a
	// 401 Bearer realm="api"
}
