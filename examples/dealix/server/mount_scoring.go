package server

import (
	"context"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/leads"
	"github.com/dealix/platform/examples/dealix/scoring"
)

// mountScoring registers lead scoring and the cost ledger: the scoring and
// cost-alert jobs on the scoring queue, GET /admin/costs (admins of the
// caller's tenant) and GET /api/v1/leads/{id}/score. Its configuration
// comes from DEALIX_COST_ALERT_USD, DEALIX_COST_ALERT_URL and
// DEALIX_MODEL_PRICES (see scoring.ConfigFromEnv).
func (srv *Server) mountScoring(mux *http.ServeMux, svc *services) {
	log := srv.cfg.Logger
	cfg, err := scoring.ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("scoring: configuration refused; using the defaults, without alert posts", "error", err)
		cfg = scoring.Config{}
	}
	cfg.Logger = log
	s, err := scoring.New(srv.db.app, srv.platform.Jobs, cfg)
	if err != nil {
		log.Error("scoring: not mounted", "error", err)
		return
	}
	srv.platform.Handle(QueueScoring, scoring.KindScore, s.ScoreHandler())
	srv.platform.Handle(QueueScoring, scoring.KindAlert, s.AlertHandler())

	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return authed(apikeys.RequireAdmin(log, h)) }
	mux.Handle("GET /admin/costs", admin(s.Costs))
	mux.Handle("GET /api/v1/leads/{id}/score", authed(http.HandlerFunc(s.LeadScore)))
}

// scoreNewLead is the leads handlers' OnCreated: the new lead's scoring
// job commits with the lead.
func (srv *Server) scoreNewLead(ctx context.Context, tx pgx.Tx, lead leads.Lead) error {
	_, err := scoring.EnqueueTx(ctx, tx, srv.platform.Jobs, lead)
	return err
}
