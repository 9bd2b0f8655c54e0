package server

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/tenancy"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/console"
	"github.com/dealix/platform/examples/dealix/scoring"
)

// mountConsole serves the admin console under /admin/ui/ (see package
// console): it signs admins in with the API's authenticator and acts
// through the platform's services, in the admin's tenant. The cost page
// runs the cost report's own handler (a scoring.Service over the same
// pool, configured as mountScoring's); the gates page runs the launch set
// as GET /admin/gates does. DEALIX_CONSOLE_SESSION_TTL sets how
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
	cfg.Gates = srv.consoleGates(svc)
	c, err := console.New(cfg)
	if err != nil {
		log.Error("console: not mounted", "error", err)
		return
	}
	mux.Handle(console.Prefix, c)
	mux.Handle("GET /admin/ui", http.RedirectHandler(console.Prefix, http.StatusMovedPermanently))
}

// consoleGates runs the launch set for the console's gates page, as GET
// /admin/gates does (DEALIX_GATES_ROOT, the same bounds and a minute's
// cache per tenant). The console holds no API credential, so the run
// probes the admin routes with an admin key of the tenant issued for the
// run and revoked after it.
func (srv *Server) consoleGates(svc *services) func(*http.Request, bool) (*gates.Report, error) {
	h := &gatesHandler{srv: srv, svc: svc, root: cmp.Or(os.Getenv("DEALIX_GATES_ROOT"), "."), cache: map[string]cachedReport{}}
	return func(r *http.Request, run bool) (*gates.Report, error) {
		tenant, ok := tenancy.TenantFrom(r.Context())
		if !ok {
			return nil, tenancy.ErrNoTenant
		}
		// Showing the last report never waits for a run in progress.
		if run {
			h.mu.Lock()
		} else if !h.mu.TryLock() {
			return nil, nil
		}
		defer h.mu.Unlock()
		if c, ok := h.cache[tenant]; ok && (!run || time.Since(c.at) <= gatesCacheTTL) {
			return c.report, nil
		}
		if !run {
			return nil, nil
		}
		issued, err := svc.keys.Create(r.Context(), tenancy.NewAPIKey{Name: "console gates run", Scopes: []string{apikeys.AdminScope}})
		if err != nil {
			return nil, fmt.Errorf("gates: issue the run's admin key: %w", err)
		}
		defer func() {
			if err := svc.keys.Revoke(context.WithoutCancel(r.Context()), issued.ID); err != nil {
				srv.cfg.Logger.Error("gates: revoke the console run's admin key", "error", err)
			}
		}()
		probe := r.Clone(r.Context())
		probe.Header = http.Header{"Authorization": {"Bearer " + issued.Key}}
		report, err := h.run(probe, tenant)
		if err != nil {
			return nil, err
		}
		h.cache[tenant] = cachedReport{report: report, at: time.Now()}
		return report, nil
	}
}
