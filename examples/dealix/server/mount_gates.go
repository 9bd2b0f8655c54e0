package server

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/webhooksig"
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
// (default: the working directory). T5's fault injection fails one HubSpot
// delivery of a probe contact of the caller's tenant (see webhookFault):
// it lands dead, is re-driven, and its lead is deleted after the run.
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

	if fault := h.webhookFault(base, tenant); fault != nil {
		lc.FaultInjection = fault.check()
		defer fault.cleanup(tctx)
	}

	ctx, cancel := context.WithTimeout(h.srv.bgCtx, gatesRunTimeout)
	defer cancel()
	return launchgates.LaunchSet(lc).Run(ctx)
}

// webhookFault is T5's fault injection on this server, for the caller's
// tenant: one HubSpot delivery of a contact of its own (an address under
// example.invalid, named launchgates.ProbeName), correctly signed and
// posted to the tenant's webhook route, whose job the intake domain
// fails (Service.FailHubSpotFor) at its only attempt
// (Service.HubSpotAttemptsFor 1) and so lands dead at once; the check then
// lifts the fault, re-drives that job by id and waits for the contact's
// lead. Every other delivery, the tenant's and the others', is processed
// as usual meanwhile. Nil without the intake domain.
func (h *gatesHandler) webhookFault(base, tenant string) *hubspotProbe {
	svc := h.srv.intake
	if svc == nil {
		return nil
	}
	ic := loadIntakeConfig(os.Getenv)
	signBase := base
	if ic.publicURL != "" {
		signBase = strings.TrimRight(ic.publicURL, "/")
	}
	return &hubspotProbe{
		srv: h.srv, intake: svc, tenant: tenant,
		url: base + "/webhooks/hubspot/" + tenant, signedURL: signBase + "/webhooks/hubspot/" + tenant,
		secret: ic.hubspotSecrets[0],
		email:  "gate-probe-" + randomProbeID() + "@example.invalid",
	}
}

// hubspotProbe follows one probe delivery through the webhooks queue.
type hubspotProbe struct {
	srv            *Server
	intake         *intake.Service
	tenant         string
	url, signedURL string // where it is posted, and the URL signed (DEALIX_PUBLIC_URL's)
	secret         string // the HubSpot app's client secret the server verifies with
	email          string

	mu  sync.Mutex
	job int64 // the delivery's job, once accepted
}

func (p *hubspotProbe) check() launchgates.WebhookFault {
	return launchgates.WebhookFault{
		Fail:    p.fail,
		Deliver: p.deliver,
		Dead:    p.dead,
		Redrive: p.redrive,
		Done:    p.done,
		Describe: func() string {
			return fmt.Sprintf("HubSpot contact %s, webhooks job %d", p.email, p.jobID())
		},
	}
}

// fail marks (or unmarks) the probe's contact: only its jobs fail, at
// their one attempt.
func (p *hubspotProbe) fail(on bool) {
	p.intake.FailHubSpotFor(p.email, on)
	if on {
		p.intake.HubSpotAttemptsFor(p.email, 1)
	}
}

// tenantCtx carries the probe's tenant, to read and re-drive its job and
// its lead under row-level security.
func (p *hubspotProbe) tenantCtx(ctx context.Context) (context.Context, error) {
	return tenancy.WithTenant(ctx, p.tenant)
}

func (p *hubspotProbe) jobID() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.job
}

// deliver posts a contact.creation of the probe's contact as HubSpot
// signs it (v3) and records the job the server answers with.
func (p *hubspotProbe) deliver(ctx context.Context) error {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return err
	}
	id := n.Int64() + 1
	body, err := json.Marshal([]intake.HubSpotEvent{{
		EventID: id, ObjectID: id, OccurredAt: time.Now().UnixMilli(), ChangeSource: "CRM",
		SubscriptionType: intake.HubSpotContactCreation,
		Properties:       map[string]string{"email": p.email, "firstname": launchgates.ProbeName, "company": "Dealix"},
	}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts, sig := webhooksig.SignHubSpotV3(p.secret, http.MethodPost, p.signedURL, body, time.Now())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhooksig.HubSpotTimestampHeader, ts)
	req.Header.Set(webhooksig.HubSpotSignatureV3Header, sig)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	var ans intake.Accepted
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &ans) != nil || ans.Status != "accepted" || len(ans.Jobs) != 1 {
		return fmt.Errorf("POST %s: %d %s, want 200 with one job accepted", p.url, resp.StatusCode, bytes.TrimSpace(answer))
	}
	p.mu.Lock()
	p.job = ans.Jobs[0]
	p.mu.Unlock()
	return nil
}

// dead is 1 while the probe's job is dead, 0 otherwise (before it is
// delivered too).
func (p *hubspotProbe) dead(ctx context.Context) (int64, error) {
	id := p.jobID()
	if id == 0 {
		return 0, nil
	}
	tctx, err := p.tenantCtx(ctx)
	if err != nil {
		return 0, err
	}
	job, err := p.srv.platform.Jobs.GetJob(tctx, id)
	if err != nil {
		return 0, err
	}
	if job.State == dlq.StateDead {
		return 1, nil
	}
	return 0, nil
}

// redrive re-drives the probe's dead job by id.
func (p *hubspotProbe) redrive(ctx context.Context) (int64, error) {
	id := p.jobID()
	if id == 0 {
		return 0, nil
	}
	tctx, err := p.tenantCtx(ctx)
	if err != nil {
		return 0, err
	}
	if err := p.srv.platform.Jobs.Redrive(tctx, id); err != nil {
		return 0, err
	}
	return 1, nil
}

// done reports whether the probe contact's lead exists.
func (p *hubspotProbe) done(ctx context.Context) (bool, error) {
	tctx, err := p.tenantCtx(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	err = tenancy.InTx(tctx, p.srv.db.app, func(tx pgx.Tx) error {
		return tx.QueryRow(tctx, `SELECT EXISTS (SELECT 1 FROM dealix.leads WHERE email = $1)`, p.email).Scan(&ok)
	})
	return ok, err
}

// cleanup lifts the probe's fault and deletes its lead, so the check
// leaves no business data behind (its job stays in the queue's history).
func (p *hubspotProbe) cleanup(ctx context.Context) {
	p.intake.FailHubSpotFor(p.email, false)
	tctx, err := p.tenantCtx(context.WithoutCancel(ctx))
	if err == nil {
		err = tenancy.InTx(tctx, p.srv.db.app, func(tx pgx.Tx) error {
			_, err := tx.Exec(tctx, `DELETE FROM dealix.leads WHERE email = $1 AND source = 'hubspot'`, p.email)
			return err
		})
	}
	if err != nil {
		p.srv.cfg.Logger.Error("gates: delete the fault probe's lead", "email", p.email, "error", err)
	}
}

// randomProbeID is 16 random hex digits.
func randomProbeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
