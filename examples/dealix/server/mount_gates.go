package server

import (
	"bytes"
	"cmp"
	"context"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/tenancy"
)

// Bounds of GET /admin/gates.
const (
	// gatesRunTimeout bounds one run of the launch set.
	gatesRunTimeout = 90 * time.Second
	// gatesCheckTimeout bounds each of its checks.
	gatesCheckTimeout = 60 * time.Second
	// gatesCacheTTL is how long a tenant's last report is served again
	// instead of running the set anew.
	gatesCacheTTL = time.Minute
)

// mountGates serves GET /admin/gates (admin scope): the launch-gates
// report, checked live against this server through the listener the
// request came in on, as JSON, or Markdown on Accept: text/markdown.
//
// The run probes the server with the caller's own credential and, for the
// checks that need a non-admin caller, a key of the caller's tenant issued
// for the run and revoked after it; each tenant's report is cached a
// minute, so a reload does not re-run the drill. The restore drill (T8,
// R2) dumps DATABASE_URL's database: it closes when that role reads every
// row (a superuser), and reports pg_dump's refusal otherwise.
// DEALIX_GATES_ROOT names the repository root for the document checks
// (default: the working directory).
func (srv *Server) mountGates(mux *http.ServeMux, svc *services) {
	h := &gatesHandler{srv: srv, svc: svc, root: cmp.Or(os.Getenv("DEALIX_GATES_ROOT"), "."), cache: map[string]cachedReport{}}
	log := srv.cfg.Logger
	mux.Handle("GET /admin/gates", svc.auth.Handler(svc.limiter.Handler(apikeys.RequireAdmin(log, h))))
}

type cachedReport struct {
	report *gates.Report
	at     time.Time
}

type gatesHandler struct {
	srv   *Server
	svc   *services
	root  string
	mu    sync.Mutex // one run at a time; a waiting caller then finds the cache fresh
	cache map[string]cachedReport
}

func (h *gatesHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.srv.cfg.Logger
	tenant, ok := tenancy.TenantFrom(r.Context())
	if !ok {
		httpx.Fail(w, r, log, httpx.Errorf(http.StatusForbidden, "no tenant"))
		return
	}
	h.mu.Lock()
	c, fresh := h.cache[tenant]
	if !fresh || time.Since(c.at) > gatesCacheTTL {
		report, err := h.run(r, tenant)
		if err != nil {
			h.mu.Unlock()
			httpx.Fail(w, r, log, err)
			return
		}
		c = cachedReport{report: report, at: time.Now()}
		h.cache[tenant] = c
	}
	h.mu.Unlock()

	var buf bytes.Buffer
	contentType := "application/json"
	write := c.report.WriteJSON
	if strings.Contains(r.Header.Get("Accept"), "text/markdown") {
		contentType, write = "text/markdown; charset=utf-8", c.report.WriteMarkdown
	}
	if err := write(&buf); err != nil {
		httpx.Fail(w, r, log, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Last-Modified", c.at.UTC().Format(http.TimeFormat))
	w.Header().Add("Vary", "Accept")
	_, _ = w.Write(buf.Bytes())
}

// run builds the launch set against this server and runs it.
func (h *gatesHandler) run(r *http.Request, tenant string) (*gates.Report, error) {
	cfg := h.srv.cfg
	base := "http://" + r.Host
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		base = "http://" + addr.String()
	}
	lc := launchgates.Config{
		BaseURL:     base,
		AdminToken:  credential(r),
		DatabaseURL: cfg.DatabaseURL,
		Root:        h.root,
		Timeout:     gatesCheckTimeout,
	}
	if i := slices.IndexFunc(cfg.CORSOrigins, func(o string) bool { return o != "none" }); i >= 0 {
		lc.AllowedOrigin = cfg.CORSOrigins[i]
	}
	// A key without the admin scope, for the 403 checks and to request the
	// probe campaign the caller then decides.
	tctx, err := tenancy.WithTenant(context.WithoutCancel(r.Context()), tenant)
	if err != nil {
		return nil, err
	}
	issued, err := h.svc.keys.Create(tctx, tenancy.NewAPIKey{Name: launchgates.ProbeName, Scopes: []string{"leads"}})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := h.svc.keys.Revoke(tctx, issued.ID); err != nil {
			h.srv.cfg.Logger.Error("gates: revoke the probe key", "error", err)
		}
	}()
	lc.UserToken = issued.Key

	ctx, cancel := context.WithTimeout(h.srv.bgCtx, gatesRunTimeout)
	defer cancel()
	return launchgates.LaunchSet(lc).Run(ctx)
}

// credential is the caller's own credential, to probe the admin routes as
// the caller.
func credential(r *http.Request) string {
	if k := r.Header.Get("X-API-Key"); k != "" {
		return k
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return v
	}
	return ""
}
