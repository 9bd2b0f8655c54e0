package server

import (
	"net/http"
	"os"
	"time"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/console"
	"github.com/dealix/platform/examples/dealix/scoring"
)

// mountConsole serves the admin console under /admin/ui/ (see package
// console): it signs admins in with the API's authenticator and acts
// through the platform's services, in the admin's tenant. The cost page
// runs the cost report's own handler (a scoring.Service over the same
// pool, configured as mountScoring's). DEALIX_CONSOLE_SESSION_TTL sets how
// long a console session lasts (a Go duration; default 8h).
func (srv *Server) mountConsole(mux *http.ServeMux, svc *services) {
	log := srv.cfg.Logger
	cfg := console.Config{
		Auth: svc.auth, AdminScope: apikeys.AdminScope,
		Approvals: srv.platform.Approvals, Jobs: srv.platform.Jobs, Runtime: srv.platform.Runtime,
		DB: srv.db.app, Queues: Queues, GatesURL: "/admin/gates", Log: log,
	}
	if v := os.Getenv("DEALIX_CONSOLE_SESSION_TTL"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			cfg.SessionTTL = d
		} else {
			log.Error("console: DEALIX_CONSOLE_SESSION_TTL is not a positive duration; using the default", "value", v)
		}
	}
	scfg, err := scoring.ConfigFromEnv(os.Getenv)
	if err != nil {
		scfg = scoring.Config{} // mountScoring has logged the refusal
	}
	scfg.Logger = log
	if costs, err := scoring.New(srv.db.app, srv.platform.Jobs, scfg); err == nil {
		cfg.Costs = http.HandlerFunc(costs.Costs)
	} else {
		log.Error("console: no cost page", "error", err)
	}
	c, err := console.New(cfg)
	if err != nil {
		log.Error("console: not mounted", "error", err)
		return
	}
	mux.Handle(console.Prefix, c)
	mux.Handle("GET /admin/ui", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
}
