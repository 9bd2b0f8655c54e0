package console

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/tenancy"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is the path the console is served under.
const Prefix = "/admin/ui/"

// CookieName is the session cookie's name.
const CookieName = "dealix_console"

// DefaultSessionTTL is Config.SessionTTL's default.
const DefaultSessionTTL = 8 * time.Hour

// ContentSecurityPolicy is sent on every console response: scripts,
// styles and requests only from the server itself, no inline script or
// style, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Config wires the console to the server's services.
type Config struct {
	// Auth verifies the credential an admin signs in with (a JWT or an
	// API key), as the API does.
	Auth *tenancy.Authenticator
	// AdminScope is the scope a principal needs. Required.
	AdminScope string
	// Approvals, Jobs and Runtime are the services the admin API uses.
	Approvals *approvals.Service
	Jobs      *dlq.Client
	Runtime   *durable.Runtime
	// DB is the app role's pool: the dead jobs are listed in the admin's
	// tenant transaction (row-level security keeps them to it).
	DB tenancy.Beginner
	// Queues are the queues shown, in order.
	Queues []string
	// Costs serves the cost report (GET /admin/costs's handler); the
	// console calls it with the admin's tenant in the request's context.
	Costs http.Handler
	// GatesURL is where the launch-gates report is served. Default
	// "/admin/gates".
	GatesURL string
	// Gates, when set, runs the launch-gates report for the tenant of the
	// request's context (or returns a recent one) for the gates page; run
	// is false to only return a report still cached (nil when none is).
	Gates func(r *http.Request, run bool) (*gates.Report, error)
	// SessionTTL is how long a session lasts. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// Log receives server-side failures. Default slog.Default().
	Log *slog.Logger
}

// Console serves the admin console.
type Console struct {
	cfg      Config
	pages    map[string]*template.Template
	sessions *sessionStore
	handler  http.Handler
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Auth == nil || cfg.Approvals == nil || cfg.Jobs == nil || cfg.Runtime == nil || cfg.DB == nil || cfg.AdminScope == "" {
		return nil, errors.New("console: Auth, AdminScope, Approvals, Jobs, Runtime and DB are required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.GatesURL == "" {
		cfg.GatesURL = "/admin/gates"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Console{cfg: cfg, sessions: &sessionStore{m: map[string]session{}}}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.handler = c.routes()
	return c, nil
}

// Handler serves everything under Prefix.
func (c *Console) Handler() http.Handler { return c.handler }

// ServeHTTP serves everything under Prefix.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"secs": func(f float64) string {
		return (time.Duration(f * float64(time.Second))).Round(time.Second).String()
	},
	"pct": func(f float64) string {
		return strings.TrimSuffix(strings.TrimRight(formatFloat(f*100), "0"), ".") + "%"
	},
}

func (c *Console) parseTemplates() error {
	c.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return err
		}
		c.pages[base] = t
	}
	return nil
}

// session is a signed-in admin.
type session struct {
	tenant  string
	subject string
	expires time.Time
}

type sessionStore struct {
	mu sync.Mutex
	m  map[string]session
}

func (s *sessionStore) create(sess session) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for k, v := range s.m { // drop the expired while we hold the lock
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[id] = sess
	return id
}

func (s *sessionStore) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if ok && time.Now().After(sess.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return sess, ok
}

func (s *sessionStore) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

type ctxKey struct{}

// routes builds the console's handler: security headers on every answer,
// cross-origin writes refused, and every page but the sign-in behind a
// session.
func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+Prefix+"login", c.loginForm)
	mux.HandleFunc("POST "+Prefix+"login", c.login)
	mux.HandleFunc("POST "+Prefix+"logout", c.logout)

	page := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, c.requireSession(h)) }
	page("GET "+Prefix+"{$}", c.overview)
	page("GET "+Prefix+"partials/overview", c.overviewPartial)
	page("GET "+Prefix+"approvals", c.approvalsList)
	page("GET "+Prefix+"partials/approvals", c.approvalsPartial)
	page("GET "+Prefix+"approvals/{id}", c.approvalDetail)
	page("POST "+Prefix+"approvals/{id}/decide", c.approvalDecide)
	page("GET "+Prefix+"queues", c.queues)
	page("GET "+Prefix+"partials/queues", c.queuesPartial)
	page("GET "+Prefix+"queues/{queue}", c.queueDead)
	page("POST "+Prefix+"queues/{queue}/redrive", c.queueRedrive)
	page("GET "+Prefix+"jobs/{id}", c.job)
	page("POST "+Prefix+"jobs/{id}/redrive", c.jobRedrive)
	page("GET "+Prefix+"runs", c.runs)
	page("GET "+Prefix+"runs/{id}", c.run)
	page("POST "+Prefix+"runs/{id}/cancel", c.runCancel)
	page("GET "+Prefix+"costs", c.costs)
	page("GET "+Prefix+"gates", c.gates)
	page("POST "+Prefix+"gates", c.gates)
	page(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "No such page.")
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusForbidden, "Cross-origin request refused.")
	}))
	protected := cop.Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			h.Set("Cache-Control", "no-store")
		}
		protected.ServeHTTP(w, r)
	})
}

// requireSession admits a request with a live session (or, for scripts,
// an Authorization or X-API-Key credential with the admin scope) and puts
// the admin's tenant and principal in its context. A browser without a
// session is sent to the sign-in form; a credential without the admin
// scope gets 403.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p tenancy.Principal
		if r.Header.Get("Authorization") != "" || r.Header.Get(tenancy.APIKeyHeader) != "" {
			var err error
			if p, err = c.cfg.Auth.Authenticate(r); err != nil {
				c.fail(w, r, http.StatusUnauthorized, "The credential was refused.")
				return
			}
		} else {
			ck, err := r.Cookie(CookieName)
			sess, ok := session{}, false
			if err == nil {
				sess, ok = c.sessions.get(ck.Value)
			}
			if !ok {
				if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
					http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
					return
				}
				// A poll after the session ended takes the page to the
				// sign-in form rather than leaving stale counts.
				w.Header().Set("HX-Redirect", Prefix+"login")
				c.fail(w, r, http.StatusUnauthorized, "Your session ended. Sign in again.")
				return
			}
			p = tenancy.Principal{Subject: sess.subject, TenantID: sess.tenant, Scopes: []string{c.cfg.AdminScope}, Method: tenancy.AuthJWT}
		}
		if !p.HasScope(c.cfg.AdminScope) {
			c.fail(w, r, http.StatusForbidden, "The console is for admins: your credential lacks the \""+c.cfg.AdminScope+"\" scope.")
			return
		}
		ctx, err := tenancy.WithPrincipal(r.Context(), p)
		if err == nil {
			ctx, err = tenancy.WithTenant(ctx, p.TenantID)
		}
		if err != nil {
			c.fail(w, r, http.StatusForbidden, "The credential names no usable tenant.")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, ctxKey{}, p)))
	})
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", nil)
}

// maxCredentialBytes bounds the pasted credential.
const maxCredentialBytes = 16 << 10

// login exchanges a pasted JWT or API key for a session cookie, through
// the API's own authenticator.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxCredentialBytes+1024)
	cred := strings.TrimSpace(r.PostFormValue("credential"))
	if cred == "" || len(cred) > maxCredentialBytes {
		c.render(w, r, http.StatusBadRequest, "login", map[string]any{"Error": "Paste an admin's JWT or API key."})
		return
	}
	probe := r.Clone(r.Context())
	probe.Header = http.Header{"Authorization": {"Bearer " + cred}}
	p, err := c.cfg.Auth.Authenticate(probe)
	if err != nil {
		c.render(w, r, http.StatusUnauthorized, "login", map[string]any{"Error": "That credential was refused."})
		return
	}
	if !p.HasScope(c.cfg.AdminScope) {
		c.fail(w, r, http.StatusForbidden, "The console is for admins: this credential lacks the \""+c.cfg.AdminScope+"\" scope.")
		return
	}
	if p.Subject == "" || p.TenantID == "" {
		c.fail(w, r, http.StatusForbidden, "The credential names no subject or tenant.")
		return
	}
	expires := time.Now().Add(c.cfg.SessionTTL)
	id := c.sessions.create(session{tenant: p.TenantID, subject: p.Subject, expires: expires})
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: Prefix, Expires: expires, MaxAge: int(c.cfg.SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(CookieName); err == nil {
		c.sessions.delete(ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
}

func principal(r *http.Request) tenancy.Principal {
	p, _ := r.Context().Value(ctxKey{}).(tenancy.Principal)
	return p
}
