package server

import (
	"log/slog"
	"net/http"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// requireAdminScope admits only principals with the admin scope (the scope
// apikeys.RequireAdmin checks), with a 403 that names what is guarded, as
// "the dead-letter queues need the \"admin\" scope".
func requireAdminScope(log *slog.Logger, what string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || !p.HasScope(apikeys.AdminScope) {
			httpx.Fail(w, r, log, httpx.Errorf(http.StatusForbidden, "%s need the %q scope", what, apikeys.AdminScope))
			return
		}
		next.ServeHTTP(w, r)
	})
}
