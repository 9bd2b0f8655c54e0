package tenancy

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/dealix/platform/internal/problem"
)

// Authentication errors. Every error that Verify, Authenticate and the
// middleware produce wraps exactly one of them, so errors.Is tells the
// caller what happened; StatusOf maps them to an HTTP status.
var (
	// ErrNoCredentials: the request carries no Authorization (or
	// X-API-Key) header. HTTP 401.
	ErrNoCredentials = errors.New("tenancy: no credentials")
	// ErrMalformedCredentials: the header is present but is not
	// "Bearer <token>" (or an API key), is repeated, or is longer than the
	// configured cap. HTTP 401.
	ErrMalformedCredentials = errors.New("tenancy: malformed credentials")
	// ErrInvalidToken: the JWT failed verification (signature, algorithm,
	// key, issuer, audience, expiry, ...). The golang-jwt error is wrapped
	// too, so errors.Is(err, jwt.ErrTokenExpired) works. HTTP 401.
	ErrInvalidToken = errors.New("tenancy: invalid token")
	// ErrInvalidAPIKey: the API key is malformed, unknown or revoked. The
	// three are not told apart, to the client or in the error. HTTP 401.
	ErrInvalidAPIKey = errors.New("tenancy: invalid API key")
	// ErrTenantNotGranted: the credential is valid but names no usable
	// tenant (the tenant claim is missing or not a UUID). HTTP 403.
	ErrTenantNotGranted = errors.New("tenancy: credential grants no tenant")
	// ErrAuthUnavailable: authentication could not be decided because a
	// dependency (the database) failed. HTTP 503.
	ErrAuthUnavailable = errors.New("tenancy: authentication unavailable")
)

// StatusOf returns the HTTP status for an authentication error: 401 for
// missing or bad credentials, 403 for a valid credential without a usable
// tenant, 503 when authentication could not be decided. Any other error is
// treated as 401: an unknown failure never lets a request through nor shows
// as a 500.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, ErrTenantNotGranted):
		return http.StatusForbidden
	case errors.Is(err, ErrAuthUnavailable):
		return http.StatusServiceUnavailable
	default:
		return http.StatusUnauthorized
	}
}

// detailOf is the problem detail shown to the client: fixed texts, so no
// token content or internal error ever reaches the response.
func detailOf(err error) string {
	switch {
	case errors.Is(err, ErrNoCredentials):
		return "authentication required"
	case errors.Is(err, ErrMalformedCredentials):
		return "malformed Authorization header"
	case errors.Is(err, ErrInvalidToken):
		return "invalid or expired token"
	case errors.Is(err, ErrInvalidAPIKey):
		return "invalid or revoked API key"
	case errors.Is(err, ErrTenantNotGranted):
		return "the credential grants no tenant"
	case errors.Is(err, ErrAuthUnavailable):
		return "authentication is temporarily unavailable"
	default:
		return "authentication failed"
	}
}

// writeAuthError answers a request that failed authentication with a
// problem+json body. A 401 carries a Bearer challenge (RFC 6750 section 3):
// without an error code when no credentials were sent, with
// error="invalid_token" otherwise.
func writeAuthError(w http.ResponseWriter, r *http.Request, realm string, logger *slog.Logger, err error) {
	status := StatusOf(err)
	switch {
	case status == http.StatusUnauthorized && errors.Is(err, ErrNoCredentials):
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`", error="invalid_token"`)
	case status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		logger.ErrorContext(r.Context(), "tenancy: authentication unavailable", "error", err)
	}
	if status != http.StatusServiceUnavailable {
		logger.DebugContext(r.Context(), "tenancy: authentication refused", "status", status, "error", err)
	}
	problem.Status(w, status, detailOf(err))
}
