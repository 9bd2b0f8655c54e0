package tenancy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

type otherKey struct{}

// The context the middleware hands on carries the principal under the
// library's shared key (what packages without a tenancy import read), keeps
// its parent's values and cancellation, and survives further wrapping.
func TestMiddlewareContext(t *testing.T) {
	token := sign(t, jwt.SigningMethodHS256, "hs-1", hmacSecret, validClaims())
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "kept"))
	var got context.Context
	h := newVerifier(t).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Context() }))
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent)
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)

	tenant, ok := rls.TenantFrom(got)
	require.True(t, ok)
	require.Equal(t, tenantA, tenant)
	require.Equal(t, "kept", got.Value(otherKey{}))
	wrapped, stop := context.WithCancel(context.WithValue(got, otherKey{}, "inner"))
	defer stop()
	p, ok := tenancy.PrincipalFrom(wrapped)
	require.True(t, ok)
	require.Equal(t, "user-42", p.Subject)
	require.Equal(t, []string{"deals:read", "deals:write"}, p.Scopes)

	// WithTenant on top keeps the principal and replaces the tenant.
	other, err := tenancy.WithTenant(wrapped, tenantB)
	require.NoError(t, err)
	tenant, _ = tenancy.TenantFrom(other)
	require.Equal(t, tenantB, tenant)
	_, ok = tenancy.PrincipalFrom(other)
	require.True(t, ok)

	cancel()
	<-wrapped.Done()
	require.ErrorIs(t, got.Err(), context.Canceled)
}

// The middleware's principal holds every scope, however many, and a
// handler appending to them changes nothing in the context.
func TestMiddlewareScopes(t *testing.T) {
	v := newVerifier(t)
	for _, tc := range []struct {
		claims jwt.MapClaims
		want   []string
	}{
		{with(validClaims(), "scope", nil), nil},
		{with(validClaims(), "scope", "a"), []string{"a"}},
		{with(with(validClaims(), "scope", " a  b c d e "), "roles", []any{"r1", "", 7, "r2"}), []string{"a", "b", "c", "d", "e", "r1", "r2"}},
		{with(with(validClaims(), "scope", nil), "scp", "x y"), []string{"x", "y"}},
	} {
		var p, again tenancy.Principal
		h := v.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ = tenancy.PrincipalFrom(r.Context())
			_ = append(p.Scopes, "appended")
			again, _ = tenancy.PrincipalFrom(r.Context())
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+sign(t, jwt.SigningMethodHS256, "hs-1", hmacSecret, tc.claims))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code)
		require.Equal(t, tc.want, p.Scopes)
		require.Equal(t, tc.want, again.Scopes)
		direct, err := v.Verify(context.Background(), req.Header.Get("Authorization")[len("Bearer "):])
		require.NoError(t, err)
		require.Equal(t, tc.want, direct.Scopes, "Verify and the middleware agree")
	}
}
