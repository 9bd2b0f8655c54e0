package server

import (
	"net/http"

	"github.com/dealix/platform/examples/dealix/outbound"
)

// mountOutbound wires the outbound campaigns and the admin's approvals:
// the routes, the send jobs' handler on the outbound queue and the
// continuations of approved and rejected campaigns.
func (srv *Server) mountOutbound(mux *http.ServeMux, svc *services) {
	cfg, log := srv.cfg, srv.cfg.Logger
	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return authed(requireAdminScope(log, "the approvals", h)) }

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
