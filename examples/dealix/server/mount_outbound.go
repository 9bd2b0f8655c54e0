package server

import (
	"log/slog"
	"net/http"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/examples/dealix/outbound"
	"github.com/dealix/platform/tenancy"
)

// mountOutbound wires the outbound campaigns and the admin's approvals:
// the routes, the send jobs' handler on the outbound queue and the
// continuations of approved and rejected campaigns.
func (srv *Server) mountOutbound(mux *http.ServeMux, svc *services) {
	cfg, log := srv.cfg, srv.cfg.Logger
	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return authed(requireAdminScope(log, h)) }

	out := &outbound.Service{
		DB: srv.db.app, Jobs: srv.platform.Jobs, Queue: QueueOutbound, Approvals: srv.platform.Approvals,
		Sender: &outbound.FakeSender{DB: srv.db.app}, MaxBodyBytes: cfg.MaxBodyBytes, Log: log,
	}
	srv.platform.Handle(QueueOutbound, outbound.JobKind, out.Handler())
	srv.platform.OnApproved(outbound.ActionKind, out.OnApproved)
	srv.platform.OnRejected(outbound.ActionKind, out.OnRejected)
	mux.Handle("POST /api/v1/outbound/campaigns", authed(svc.idemKey.Handler(http.HandlerFunc(out.Create))))
	mux.Handle("GET /api/v1/outbound/campaigns/{id}", authed(http.HandlerFunc(out.Get)))

	ah := &outbound.ApprovalsAdmin{Approvals: srv.platform.Approvals, MaxBodyBytes: cfg.MaxBodyBytes, Log: log}
	mux.Handle("GET /admin/approvals", admin(ah.List))
	mux.Handle("GET /admin/approvals/{id}", admin(ah.Get))
	mux.Handle("POST /admin/approvals/{id}/approve", admin(ah.Approve))
	mux.Handle("POST /admin/approvals/{id}/reject", admin(ah.Reject))
	mux.Handle("GET /admin/approvals/{id}/audit", admin(ah.Audit))
}

// requireAdminScope admits only principals with the admin scope (the
// scope apikeys.RequireAdmin checks), with a refusal that names the admin
// API rather than API keys.
func requireAdminScope(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := tenancy.PrincipalFrom(r.Context()); !ok || !p.HasScope(apikeys.AdminScope) {
			httpx.Fail(w, r, log, httpx.Errorf(http.StatusForbidden, "the admin API needs the %q scope", apikeys.AdminScope))
			return
		}
		next.ServeHTTP(w, r)
	})
}
