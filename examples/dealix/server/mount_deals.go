package server

import (
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dealix/platform/examples/dealix/deals"
)

// The deals domain's debug knobs, honoured only with DEALIX_DEBUG_ROUTES:
// fault injection for the crash tests.
const (
	// EnvDealsCrashAt names crash points, comma-separated (see
	// deals.CrashPoints): the process kills itself with SIGKILL there.
	EnvDealsCrashAt = "DEALIX_DEALS_CRASH_AT"
	// EnvDealsStepDelay is a duration slept inside each step of the
	// deal-closed run, so a kill from outside lands inside a step.
	EnvDealsStepDelay = "DEALIX_DEALS_STEP_DELAY"
)

// mountDeals registers the deals routes, the deal-closed workflow, the
// follow-up handler and the durable runs admin API.
func (srv *Server) mountDeals(mux *http.ServeMux, svc *services) {
	cfg, log := srv.cfg, srv.cfg.Logger
	authed := func(h http.Handler) http.Handler { return svc.auth.Handler(svc.limiter.Handler(h)) }
	admin := func(h http.HandlerFunc) http.Handler { return authed(requireAdminScope(log, "the durable runs", h)) }

	ds, err := deals.New(deals.Config{
		DB: srv.db.app, Runtime: srv.platform.Runtime, Jobs: srv.platform.Jobs,
		FollowupQueue: QueueFollowups, MaxBodyBytes: cfg.MaxBodyBytes, Log: log,
		Debug: dealsDebug(cfg, os.Getenv),
	})
	if err != nil {
		// Only a second registration of the workflow or a bad debug knob
		// gets here: a fault of the build or of a test's set-up.
		panic("server: " + err.Error())
	}
	srv.platform.Handle(QueueFollowups, deals.FollowupKind, ds.FollowupHandler())

	mux.Handle("POST /api/v1/deals", authed(svc.idemKey.Handler(http.HandlerFunc(ds.Create))))
	mux.Handle("GET /api/v1/deals", authed(http.HandlerFunc(ds.List)))
	mux.Handle("GET /api/v1/deals/{id}", authed(http.HandlerFunc(ds.Get)))
	mux.Handle("POST /api/v1/deals/{id}/close", authed(ds.AfterCommit(svc.idemKey.Handler(http.HandlerFunc(ds.Close)))))

	runs := &deals.Runs{Runtime: srv.platform.Runtime, MaxBodyBytes: cfg.MaxBodyBytes, Log: log}
	mux.Handle("GET /admin/runs", admin(runs.List))
	mux.Handle("GET /admin/runs/{id}", admin(runs.Get))
	mux.Handle("POST /admin/runs/{id}/cancel", admin(runs.Cancel))
}

// dealsDebug reads the deals debug knobs. They act only with debug routes
// on; set without them they are ignored, loudly.
func dealsDebug(cfg Config, getenv func(string) string) deals.Debug {
	crashAt, delay := strings.TrimSpace(getenv(EnvDealsCrashAt)), strings.TrimSpace(getenv(EnvDealsStepDelay))
	if crashAt == "" && delay == "" {
		return deals.Debug{}
	}
	if !cfg.DebugRoutes {
		cfg.Logger.Warn("deals: debug knobs ignored without DEALIX_DEBUG_ROUTES=true", EnvDealsCrashAt, crashAt, EnvDealsStepDelay, delay)
		return deals.Debug{}
	}
	var d deals.Debug
	for _, p := range strings.Split(crashAt, ",") {
		if p = strings.TrimSpace(p); p != "" {
			d.CrashAt = append(d.CrashAt, p)
		}
	}
	if delay != "" {
		var err error
		if d.StepDelay, err = time.ParseDuration(delay); err != nil || d.StepDelay < 0 {
			// LoadConfig refuses such a value with status 2; only a caller of
			// New that skipped it gets here.
			panic("server: " + EnvDealsStepDelay + ": want a duration such as 50ms, got " + delay)
		}
	}
	cfg.Logger.Warn("deals: fault injection on", "crash_at", d.CrashAt, "step_delay", d.StepDelay)
	return d
}
