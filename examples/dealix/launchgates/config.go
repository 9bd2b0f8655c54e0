package launchgates

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dealix/platform/gates"
)

// Defaults of Config.
const (
	DefaultLoadRequests = 100
	DefaultLoadRate     = 100 // requests per second
	DefaultLoadP95      = 500 * time.Millisecond
	DefaultTimeout      = 60 * time.Second
	// DisallowedOrigin is the browser origin the CORS check expects to be
	// refused; no deployment should allow it.
	DisallowedOrigin = "https://gate-probe.invalid"
	// ProbeName names every row a check writes.
	ProbeName = "launch gate probe"
)

// WebhookRoutes are the inbound webhook routes that must refuse unsigned
// deliveries; {tenant} is filled with a well-formed tenant id, since the
// intake routes are per tenant.
var WebhookRoutes = []string{"/webhooks/moyasar", "/webhooks/hubspot/{tenant}", "/webhooks/calendly/{tenant}"}

// webhookPath fills route's {tenant} with a random, well-formed id: the
// signature is checked before any tenant is looked up.
func webhookPath(route string) string {
	b := []byte(randomHex(16))
	id := string(b[0:8]) + "-" + string(b[8:12]) + "-4" + string(b[13:16]) + "-a" + string(b[17:20]) + "-" + string(b[20:32])
	return strings.Replace(route, "{tenant}", id, 1)
}

// Queues are the reference server's four queues, all of which must show
// in /admin/dlq/stats.
var Queues = []string{"webhooks", "outbound", "followups", "scoring"}

// Config says where the server, its database and the repository are. Only
// BaseURL is required: a gate whose inputs are missing reports open or
// blocked with the reason, never closed.
type Config struct {
	// BaseURL is the running server, such as http://127.0.0.1:8080.
	BaseURL string
	// AdminToken is a credential with the admin scope: a JWT, or an API
	// key (dlx_…, sent as X-API-Key).
	AdminToken string
	// UserToken is a credential of the same tenant without the admin
	// scope: admin routes must answer it 403. It also requests the probe
	// campaign, so the admin deciding it is another principal.
	UserToken string
	// AllowedOrigin is a browser origin the deployment allows; when set,
	// the CORS check also asks that it is allowed.
	AllowedOrigin string
	// DatabaseURL reaches the server's database as a role that reads every
	// row (a superuser or a BYPASSRLS role: pg_dump refuses to dump a
	// table row-level security would filter) and may create a database
	// for the restore drill.
	DatabaseURL string
	// AppDatabaseURL reaches the database as the role serving requests;
	// the RLS audit is about that role. Empty: the audit checks the
	// tables only, through DatabaseURL.
	AppDatabaseURL string
	// PGBin is the directory of pg_dump and pg_restore. Default: PATH.
	PGBin string
	// Root is the repository's root, for the documents and CI checks.
	// Default: the current directory.
	Root string
	// CICommand, when set, is run for T3 (CI green), such as
	// ["bash", ".ci/run"] in Root. Unset: T3 is blocked, since CI's
	// verdict lives with the CI service.
	CICommand []string
	// CITimeout bounds CICommand. Default: 90 minutes.
	CITimeout time.Duration
	// FaultInjection proves a failing webhook lands dead and is re-driven
	// (part of T5), such as a WebhookFault connected to the server's
	// switches. Unset: T5 is partial at best, with the reason.
	FaultInjection gates.Check
	// CostAlert proves the daily cost alert fires (O4). Unset: O4 is
	// open with the reason.
	CostAlert gates.Check
	// DealBody is the JSON body that creates the probe deal, and
	// CloseBody the one that closes it. Defaults: DefaultDealBody,
	// DefaultCloseBody.
	DealBody, CloseBody string
	// CampaignBody builds the JSON body of a campaign the approvals policy
	// holds. Default: DefaultCampaignBody.
	CampaignBody func() string
	// LoadRequests, LoadRate and LoadP95 shape the T6 load probe.
	// Defaults: DefaultLoadRequests, DefaultLoadRate, DefaultLoadP95.
	LoadRequests int
	LoadRate     int
	LoadP95      time.Duration
	// Timeout bounds each check. Default: DefaultTimeout.
	Timeout time.Duration
	// Client sends the requests. Default: a client that does not follow
	// redirects, with a 10 s timeout per request.
	Client *http.Client
}

// DefaultDealBody creates the probe deal.
const DefaultDealBody = `{"title":"launch gate probe","amount":100000,"currency":"SAR"}`

// DefaultCloseBody closes the probe deal as won.
const DefaultCloseBody = `{"outcome":"won"}`

// DefaultCampaignBody is a campaign of 51 recipients, one more than the
// approvals policy lets through unheld.
func DefaultCampaignBody() string {
	recipients := make([]string, 51)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("gate-probe-%02d@example.invalid", i)
	}
	body, _ := json.Marshal(map[string]any{
		"name":       ProbeName,
		"message":    map[string]string{"subject": ProbeName, "body": "A launch gate probe: rejected, never sent."},
		"recipients": recipients,
		"risk":       0.1,
	})
	return string(body)
}

func (c Config) withDefaults() Config {
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.Root = cmp.Or(c.Root, ".")
	c.LoadRequests = cmp.Or(c.LoadRequests, DefaultLoadRequests)
	c.LoadRate = cmp.Or(c.LoadRate, DefaultLoadRate)
	c.LoadP95 = cmp.Or(c.LoadP95, DefaultLoadP95)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.CITimeout = cmp.Or(c.CITimeout, 90*time.Minute)
	c.DealBody = cmp.Or(c.DealBody, DefaultDealBody)
	c.CloseBody = cmp.Or(c.CloseBody, DefaultCloseBody)
	if c.CampaignBody == nil {
		c.CampaignBody = DefaultCampaignBody
	}
	if c.Client == nil {
		c.Client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c
}

// probe sends requests to the server.
type probe struct{ cfg Config }

// answer is a finished response, body read.
type answer struct {
	status  int
	header  http.Header
	body    []byte
	elapsed time.Duration
}

// json decodes the body into v.
func (a answer) json(v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("status %d, body is not JSON: %.120s", a.status, a.body)
	}
	return nil
}

func (a answer) String() string {
	return fmt.Sprintf("%d %.160s", a.status, strings.TrimSpace(string(a.body)))
}

// do sends method path with the credential (empty: none) and headers as
// name, value pairs.
func (p probe) do(ctx context.Context, method, path, credential, body string, headers ...string) (answer, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.cfg.BaseURL+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	setCredential(req.Header, credential)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: reading the body: %w", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(b), elapsed: time.Since(start)}, nil
}

// setCredential sends an API key (dlx_…) as X-API-Key and anything else
// as a Bearer token.
func setCredential(h http.Header, credential string) {
	switch {
	case credential == "":
	case strings.HasPrefix(credential, "dlx_"):
		h.Set("X-API-Key", credential)
	default:
		h.Set("Authorization", "Bearer "+credential)
	}
}

// adminAnswers checks that path answers 200 to the admin credential and
// 403 to the user credential (when one is configured), and returns the
// admin's answer.
func (p probe) adminAnswers(ctx context.Context, path string) (answer, []string, error) {
	var evidence []string
	if p.cfg.AdminToken == "" {
		return answer{}, nil, fmt.Errorf("no admin credential configured")
	}
	if p.cfg.UserToken != "" {
		a, err := p.do(ctx, http.MethodGet, path, p.cfg.UserToken, "")
		if err != nil {
			return answer{}, nil, err
		}
		if a.status != http.StatusForbidden {
			return answer{}, nil, fmt.Errorf("GET %s as a non-admin: %s, want 403", path, a)
		}
		evidence = append(evidence, "non-admin 403")
	}
	anon, err := p.do(ctx, http.MethodGet, path, "", "")
	if err != nil {
		return answer{}, nil, err
	}
	if anon.status != http.StatusUnauthorized {
		return answer{}, nil, fmt.Errorf("GET %s without credentials: %s, want 401", path, anon)
	}
	evidence = append(evidence, "anonymous 401")
	a, err := p.do(ctx, http.MethodGet, path, p.cfg.AdminToken, "")
	if err != nil {
		return answer{}, nil, err
	}
	if a.status != http.StatusOK {
		return answer{}, nil, fmt.Errorf("GET %s as admin: %s, want 200", path, a)
	}
	evidence = append(evidence, fmt.Sprintf("admin 200 in %s", a.elapsed.Round(time.Millisecond)))
	return a, evidence, nil
}

// result helpers.
func closed(format string, args ...any) gates.Result {
	return gates.Result{Status: gates.Closed, Evidence: fmt.Sprintf(format, args...)}
}

func open(format string, args ...any) gates.Result {
	return gates.Result{Status: gates.Open, Reason: fmt.Sprintf(format, args...)}
}

func partial(evidence, reason string) gates.Result {
	return gates.Result{Status: gates.Partial, Evidence: evidence, Reason: reason}
}

func blocked(reason string) gates.Check { return gates.BlockedCheck{Reason: reason} }

// fn adapts a function that returns an error to a check: nil closes with
// the evidence it returned.
func fn(f func(ctx context.Context) (string, error)) gates.Check {
	return gates.CheckFunc(func(ctx context.Context) gates.Result {
		evidence, err := f(ctx)
		if err != nil {
			return open("%v", err)
		}
		return closed("%s", evidence)
	})
}
