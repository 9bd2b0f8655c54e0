package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/console"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/tenancy"
)

// consolePages are every page of the console an admin can open.
var consolePages = []string{"", "approvals", "queues", "queues/webhooks", "runs", "costs", "gates",
	"partials/overview", "partials/approvals", "partials/queues", "jobs/1", "approvals/" + uuid.NewString(), "runs/" + uuid.NewString()}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// consoleDo sends a request to the console without following redirects.
func (e *env) consoleDo(method, path string, form url.Values, headers ...string) response {
	e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, e.url+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp, b}
}

// consoleSignIn exchanges a credential for a session cookie over plain
// HTTP and returns the Cookie header to send.
func (e *env) consoleSignIn(credential string) string {
	e.t.Helper()
	r := e.consoleDo("POST", console.Prefix+"login", url.Values{"credential": {credential}})
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign in: status %d: %s", r.StatusCode, r.body)
	}
	for _, c := range r.Cookies() {
		if c.Name == console.CookieName {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != console.Prefix || c.Secure {
				e.t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path %s, not Secure on plain HTTP", c, console.Prefix)
			}
			return c.Name + "=" + c.Value
		}
	}
	e.t.Fatalf("sign in set no session cookie: %v", r.Header)
	return ""
}

func TestConsoleRefusesNonAdminsCrossOriginAndSetsCSP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	admin := e.token(tenant, "admin")
	user := e.token(tenant, "leads")

	// Every console answer carries the policy, without 'unsafe-inline'.
	for _, path := range []string{"login", "", "static/console.js", "nope"} {
		r := e.consoleDo("GET", console.Prefix+path, nil)
		csp := r.Header.Get("Content-Security-Policy")
		if csp != console.ContentSecurityPolicy || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
			t.Fatalf("GET %s: CSP %q", path, csp)
		}
		if r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("GET %s: no X-Frame-Options", path)
		}
	}

	// Without a session, the pages send the browser to the sign-in form.
	for _, p := range consolePages {
		r := e.consoleDo("GET", console.Prefix+p, nil)
		if p == "partials/overview" {
			r = e.consoleDo("GET", console.Prefix+p, nil, "HX-Request", "true")
			if r.StatusCode != http.StatusUnauthorized || r.Header.Get("HX-Redirect") != console.Prefix+"login" {
				t.Fatalf("htmx poll without a session: %d %v", r.StatusCode, r.Header)
			}
			continue
		}
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != console.Prefix+"login" {
			t.Fatalf("GET %s without a session: %d %q", p, r.StatusCode, r.Header.Get("Location"))
		}
	}

	// A non-admin cannot sign in, nor open any page with the credential.
	for _, cred := range []string{user, e.srv.Demo().APIKey} {
		r := e.consoleDo("POST", console.Prefix+"login", url.Values{"credential": {cred}})
		if r.StatusCode != http.StatusForbidden || len(r.Cookies()) != 0 || !strings.Contains(string(r.body), "lacks the &#34;admin&#34; scope") {
			t.Fatalf("non-admin sign in: %d %v %s", r.StatusCode, r.Cookies(), r.body)
		}
	}
	for _, p := range consolePages {
		for _, h := range [][]string{bearer(user), {"X-API-Key", e.srv.Demo().APIKey}} {
			if r := e.consoleDo("GET", console.Prefix+p, nil, h...); r.StatusCode != http.StatusForbidden {
				t.Fatalf("GET %s as a non-admin: %d", p, r.StatusCode)
			}
		}
	}
	// A refused credential signs nobody in.
	if r := e.consoleDo("POST", console.Prefix+"login", url.Values{"credential": {"not-a-token"}}); r.StatusCode != http.StatusUnauthorized || len(r.Cookies()) != 0 {
		t.Fatalf("bad credential: %d", r.StatusCode)
	}

	// An admin's session opens every page.
	cookie := e.consoleSignIn(admin)
	for _, p := range consolePages {
		want := http.StatusOK
		if strings.HasPrefix(p, "jobs/") || strings.HasPrefix(p, "approvals/") || strings.HasPrefix(p, "runs/") {
			want = http.StatusNotFound
		}
		if r := e.consoleDo("GET", console.Prefix+p, nil, "Cookie", cookie); r.StatusCode != want {
			t.Fatalf("GET %s as an admin: %d, want %d: %s", p, r.StatusCode, want, r.body)
		}
	}

	// A cross-origin form post is refused, with the admin's cookie or not.
	rq := e.do("POST", "/api/v1/outbound/campaigns", campaignBody(recipients(51, "example.com"), 0.1, false),
		with(e.principal(tenant, "sara"), "Idempotency-Key", uuid.NewString())...)
	wantStatus(t, rq, http.StatusAccepted)
	var held campaignCreated
	rq.json(t, &held)
	decide := console.Prefix + "approvals/" + held.ApprovalID + "/decide"
	for _, h := range [][]string{
		{"Cookie", cookie, "Origin", "https://evil.example"},
		{"Cookie", cookie, "Sec-Fetch-Site", "cross-site"},
	} {
		r := e.consoleDo("POST", decide, url.Values{"decision": {"approve"}, "comment": {"csrf"}}, h...)
		if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), "Cross-origin request refused") {
			t.Fatalf("cross-origin post %v: %d %s", h, r.StatusCode, r.body)
		}
	}
	r := e.consoleDo("POST", console.Prefix+"login", url.Values{"credential": {admin}}, "Origin", "https://evil.example")
	if r.StatusCode != http.StatusForbidden || len(r.Cookies()) != 0 {
		t.Fatalf("cross-origin sign in: %d", r.StatusCode)
	}
	var req struct{ Status string }
	e.do("GET", "/admin/approvals/"+held.ApprovalID, "", bearer(admin)...).json(t, &req)
	if req.Status != "pending" {
		t.Fatalf("a refused cross-origin post decided the request: %s", req.Status)
	}
	// The same post from the console's own origin decides it.
	r = e.consoleDo("POST", decide, url.Values{"decision": {"reject"}, "comment": {"same origin"}}, "Cookie", cookie, "Origin", e.url, "Sec-Fetch-Site", "same-origin")
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "Request rejected.") {
		t.Fatalf("same-origin decision: %d %s", r.StatusCode, r.body)
	}

	// On TLS the session cookie is Secure.
	tls := httptest.NewTLSServer(e.srv.Handler())
	defer tls.Close()
	client := tls.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.PostForm(tls.URL+console.Prefix+"login", url.Values{"credential": {admin}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign in on TLS: %d %+v", resp.StatusCode, cs)
	}

	// Signing out ends the session.
	if r := e.consoleDo("POST", console.Prefix+"logout", url.Values{}, "Cookie", cookie); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", r.StatusCode)
	}
	if r := e.consoleDo("GET", console.Prefix, nil, "Cookie", cookie); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("a signed-out session still opens the console: %d", r.StatusCode)
	}
}

// --- the browser ---

// browserPath finds Chromium. Without it the browser tests fail in CI (CI
// or DEALIX_REQUIRE_BROWSER set) and are skipped, saying why, elsewhere.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("DEALIX_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (apt-get install -y chromium, or set DEALIX_CHROMIUM): the console's browser tests cannot run"
	if os.Getenv("CI") != "" || os.Getenv("DEALIX_REQUIRE_BROWSER") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile; the context
// ends the browser when the test does.
func newBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browserPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Loopback only: every host name fails to resolve; the server is
		// reached by its IP literal.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browser
}

// session is a browser context of its own (its own cookies), as a second
// person's browser.
func session(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	return ctx
}

// tab opens another tab in s's browser context (same cookies).
func tab(t *testing.T, s context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(s)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshotDir is where the pages' screenshots go: DEALIX_SCREENSHOTS,
// or the test's temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DEALIX_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	// The page ran under the policy without a refusal (console.js counts them).
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.getAttribute("data-csp-violations") || "0"`))
	if err != nil || v != "0" {
		t.Fatalf("%s: %s Content-Security-Policy violations (%v)", name, v, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func signIn(t *testing.T, ctx context.Context, base, credential string) {
	t.Helper()
	run(t, ctx, "sign in",
		chromedp.Navigate(base+console.Prefix),
		chromedp.WaitVisible(chromedp.CSS("#credential")),
		chromedp.SetValue(chromedp.CSS("#credential"), credential),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#tenant")),
	)
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText reloads the page until sel's text contains want: for state
// that changes in the background (a job's run).
func waitText(t *testing.T, ctx context.Context, url, sel, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run(t, ctx, "open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
		s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.AtLeast(0)))
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s reads %q, want %q", url, sel, s, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deadJob enqueues a job that dead-letters on its first failure and waits
// until it is dead.
func (e *env) deadJob(tenant string, p dlq.JobParams) int64 {
	e.t.Helper()
	ctx, err := tenancy.WithTenant(context.Background(), tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	p.MaxAttempts = 1
	ins, err := e.srv.Platform().Jobs.Enqueue(ctx, p)
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitJob(tenant, ins.ID, dlq.StateDead, 1)
	return ins.ID
}

// waitJob waits until job id is in state with at least errs errors.
func (e *env) waitJob(tenant string, id int64, state dlq.State, errs int) *dlq.JobInfo {
	e.t.Helper()
	ctx, _ := tenancy.WithTenant(context.Background(), tenant)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := e.srv.Platform().Jobs.GetJob(ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if info.State == state && len(info.Errors) >= errs {
			return info
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("job %d is %s with %d errors, want %s with %d", id, info.State, len(info.Errors), state, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium against
// the real server: the approvals inbox and its first-decision-wins, the
// dead letters and their re-drive, the costs chart, and tenant isolation.
func TestConsoleInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	browser := newBrowser(t, ctx)
	e := newEnv(t)
	dir := screenshotDir(t)
	tenant, other := newTenant(), newTenant()
	requester := e.principal(tenant, "sara")
	omar := signToken(t, e.key, claims(tenant, "omar", "admin"))
	lina := signToken(t, e.key, claims(tenant, "lina", "admin"))

	// A held campaign of 51 recipients, requested through the API.
	rcpts := recipients(51, "example.com")
	held, _ := e.createCampaign(requester, campaignBody(rcpts, 0.1, false), http.StatusAccepted)

	// Leads scored by the (fake) model: the cost ledger has data.
	for i := range 3 {
		l := e.createLead(strings.TrimPrefix(requester[1], "Bearer "), fmt.Sprintf(`{"name":"Lead %d","email":"l%d@example.com","company":"Acme"}`, i, i))
		deadline := time.Now().Add(30 * time.Second)
		for e.do("GET", "/api/v1/leads/"+l.ID+"/score", "", requester...).StatusCode != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("lead %s not scored", l.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Omar and Lina sign in, each in a browser context of their own.
	omarS := session(t, browser)
	signIn(t, omarS, e.url, omar)
	if got := text(t, omarS, "#tenant"); got != tenant {
		t.Fatalf("signed in to tenant %q, want %q", got, tenant)
	}
	shot(t, omarS, dir, "01-overview")
	if got := text(t, omarS, "#approvals-waiting"); got != "1" {
		t.Fatalf("overview: %q approvals waiting, want 1", got)
	}
	linaS := session(t, browser)
	signIn(t, linaS, e.url, lina)
	linaInbox := tab(t, linaS)

	// The inbox lists the campaign: action, requester, reason, 51 recipients.
	row := fmt.Sprintf(`tr.request[data-id="%s"]`, held.ApprovalID)
	for _, s := range []context.Context{omarS, linaInbox} {
		run(t, s, "open the inbox", chromedp.Navigate(e.url+console.Prefix+"approvals"), chromedp.WaitVisible(chromedp.CSS(row)))
	}
	rowText := text(t, omarS, row)
	for _, want := range []string{"outbound.campaign", "sara", "recipients", "51", "pending"} {
		if !strings.Contains(rowText, want) {
			t.Fatalf("inbox row %q lacks %q", rowText, want)
		}
	}
	shot(t, omarS, dir, "02-approvals-inbox")

	// Both open the request; Omar approves with a reason.
	detail := e.url + console.Prefix + "approvals/" + held.ApprovalID
	for _, s := range []context.Context{omarS, linaS} {
		run(t, s, "open the request", chromedp.Navigate(detail), chromedp.WaitVisible(chromedp.CSS("#approve")))
	}
	if got := text(t, omarS, "#recipients"); got != "51" {
		t.Fatalf("request shows %q recipients", got)
	}
	run(t, omarS, "approve",
		chromedp.SetValue(chromedp.CSS("#comment"), "checked the list"),
		chromedp.Click(chromedp.CSS("#approve")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, omarS, "#notice"); got != "Request approved." {
		t.Fatalf("after approving: %q", got)
	}
	// Lina's inbox, left open, drops it without a reload.
	run(t, linaInbox, "the inbox refreshes", chromedp.WaitVisible(chromedp.CSS("#no-requests")))
	// Lina, deciding afterwards from the page she had open, is told it is
	// already decided; the first decision stands.
	run(t, linaS, "reject after",
		chromedp.SetValue(chromedp.CSS("#comment"), "too many"),
		chromedp.Click(chromedp.CSS("#reject")),
		chromedp.WaitVisible(chromedp.CSS("#problem")))
	if got := text(t, linaS, "#problem"); !strings.Contains(got, "Already decided") || !strings.Contains(got, "approved by omar") {
		t.Fatalf("second decision: %q", got)
	}
	if got := text(t, linaS, "#request-status"); got != "approved" {
		t.Fatalf("status after the second decision: %q", got)
	}
	shot(t, linaS, dir, "03-already-decided")
	// The audit trail shows both attempts, the approval first.
	run(t, omarS, "reload the request", chromedp.Navigate(detail), chromedp.WaitVisible(chromedp.CSS("#audit")))
	audit, err := chromedp.Run(omarS, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("tr.audit")).map(r => Array.from(r.cells).slice(1).map(c => c.textContent.trim()).join("|"))`))
	if err != nil {
		t.Fatalf("read the audit trail: %v", err)
	}
	want := []string{"omar|approve|accepted|approved|checked the list", "lina|reject|conflict|approved|too many"}
	if strings.Join(audit, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail\n%s\nwant\n%s", strings.Join(audit, "\n"), strings.Join(want, "\n"))
	}
	if got := text(t, omarS, "#decided"); !strings.Contains(got, "approved by omar") || !strings.Contains(got, "checked the list") {
		t.Fatalf("decision shown %q", got)
	}
	shot(t, omarS, dir, "04-approval-audit")
	// The outbound queue received the send once; each recipient got one message.
	sent := e.waitSent(requester, held.Campaign.ID)
	if sent.Counts.Sent != 51 || e.outboundJobs(tenant) != 1 {
		t.Fatalf("after approval: %+v, %d send jobs", sent, e.outboundJobs(tenant))
	}
	messages, calls := e.mailbox(tenant, held.Campaign.ID)
	wantEachOnce(t, rcpts, messages, calls)
	// Decided requests are searchable by status.
	run(t, omarS, "approved requests", chromedp.Navigate(e.url+console.Prefix+"approvals?status=approved"), chromedp.WaitVisible(chromedp.CSS(row)))

	// A dead webhook: a verified HubSpot delivery whose handler is switched
	// to fail, on its only attempt.
	intakeSvc := e.srv.Intake()
	intakeSvc.SetMaxAttempts(1)
	intakeSvc.FailHubSpot(true)
	var delivered ingestAnswer
	r0 := e.sendHubSpot(tenant, hubspotBody(7, intake.HubSpotContactCreation, "dead.letter@example.com", "Dana", "Dammam Labs"), intake.DevHubSpotSecret)
	wantStatus(t, r0, http.StatusOK)
	r0.json(t, &delivered)
	if len(delivered.Jobs) != 1 {
		t.Fatalf("delivery answered %s", r0.body)
	}
	hook := delivered.Jobs[0]
	e.waitJob(tenant, hook, dlq.StateDead, 1)
	// A dead scoring job: its lead did not exist yet.
	leadID := uuid.NewString()
	score := e.deadJob(tenant, dlq.JobParams{Queue: server.QueueScoring, Kind: scoring.KindScore, Payload: scoring.ScoreJob{LeadID: leadID}})

	run(t, omarS, "queues", chromedp.Navigate(e.url+console.Prefix+"queues"), chromedp.WaitVisible(chromedp.CSS(`tr.queue[data-queue="webhooks"]`)))
	for q, want := range map[string]string{"webhooks": "1", "scoring": "1", "outbound": "0", "followups": "0"} {
		if got := text(t, omarS, fmt.Sprintf(`tr.queue[data-queue=%q] td.dead`, q)); got != want {
			t.Fatalf("queue %s shows %s dead, want %s", q, got, want)
		}
	}
	shot(t, omarS, dir, "05-queues")
	run(t, omarS, "webhooks dead letters", chromedp.Navigate(e.url+console.Prefix+"queues/webhooks"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr.dead-job[data-id="%d"]`, hook))))
	if got := text(t, omarS, fmt.Sprintf(`tr.dead-job[data-id="%d"] td.error`, hook)); !strings.Contains(got, "switched to fail") {
		t.Fatalf("dead webhook's error %q", got)
	}
	shot(t, omarS, dir, "06-dead-webhooks")
	run(t, omarS, "dead webhook", chromedp.Navigate(fmt.Sprintf("%s%sjobs/%d", e.url, console.Prefix, hook)), chromedp.WaitVisible(chromedp.CSS("#errors")))
	if got := text(t, omarS, "#errors"); !strings.Contains(got, "switched to fail") {
		t.Fatalf("job page errors %q", got)
	}
	if got := text(t, omarS, "#payload"); !strings.Contains(got, "dead.letter@example.com") {
		t.Fatalf("job page payload %q", got)
	}
	shot(t, omarS, dir, "07-dead-job")
	// The handler is fixed: re-driving all of the webhooks queue runs the
	// job again, it completes, the dead count drops, and the lead exists
	// once.
	intakeSvc.FailHubSpot(false)
	run(t, omarS, "re-drive webhooks", chromedp.Navigate(e.url+console.Prefix+"queues/webhooks"),
		chromedp.Click(chromedp.CSS("#redrive-all")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, omarS, "#notice"); got != "1 dead jobs re-driven" {
		t.Fatalf("re-drive all: %q", got)
	}
	e.waitJob(tenant, hook, dlq.StateCompleted, 1)
	if got := waitText(t, omarS, e.url+console.Prefix+"queues/webhooks", "#dead-count", "0"); got != "0" {
		t.Fatalf("webhooks dead count %q", got)
	}
	if n := e.count(t, "SELECT count(*) FROM dealix.leads WHERE tenant_id = $1 AND email = 'dead.letter@example.com'", tenant); n != 1 {
		t.Fatalf("%d leads for the re-driven contact", n)
	}
	// The scoring job's cause is fixed (its lead now exists): re-driven,
	// it completes, and the queue's dead count drops.
	if _, err := e.db.System.Exec(context.Background(), `INSERT INTO dealix.leads (tenant_id, id, name, email) VALUES ($1, $2, 'Late lead', 'late@example.com')`, tenant, leadID); err != nil {
		t.Fatal(err)
	}
	jobURL := fmt.Sprintf("%s%sjobs/%d", e.url, console.Prefix, score)
	run(t, omarS, "re-drive the scoring job", chromedp.Navigate(jobURL), chromedp.Click(chromedp.CSS("#redrive")), chromedp.WaitVisible(chromedp.CSS("#notice")))
	waitText(t, omarS, jobURL, "#job-state", "completed")
	shot(t, omarS, dir, "08-redriven-job")
	if got := waitText(t, omarS, e.url+console.Prefix+"queues/scoring", "#dead-count", "0"); got != "0" {
		t.Fatalf("scoring dead count %q", got)
	}

	// Costs: the chart is drawn with data and the totals are the API's.
	var api scoring.Report
	r := e.do("GET", "/admin/costs", "", bearer(omar)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &api)
	if api.Total.Calls < 4 {
		t.Fatalf("the ledger has %d calls, want at least 4", api.Total.Calls)
	}
	run(t, omarS, "costs", chromedp.Navigate(e.url+console.Prefix+"costs"), chromedp.WaitVisible(chromedp.CSS("#chart canvas")))
	if got := text(t, omarS, "#total-cost"); got != "$"+string(api.Total.CostUSD) {
		t.Fatalf("console total %q, /admin/costs %s", got, api.Total.CostUSD)
	}
	if got := text(t, omarS, "#total-calls"); got != fmt.Sprint(api.Total.Calls) {
		t.Fatalf("console calls %q, /admin/costs %d", got, api.Total.Calls)
	}
	inked, err := chromedp.Run(omarS, chromedp.Evaluate[int](`(() => {
		const c = document.querySelector("#chart canvas");
		if (!c || !c.width || !c.height) return 0;
		const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
		return n;
	})()`))
	if err != nil {
		t.Fatalf("read the chart: %v", err)
	}
	if inked < 200 {
		t.Fatalf("the costs chart has %d drawn pixels", inked)
	}
	shot(t, omarS, dir, "09-costs")
	// The overview's spend today is the API's figure for today (UTC, the
	// database's day); nothing else spends before the gates run below.
	run(t, omarS, "overview", chromedp.Navigate(e.url+console.Prefix), chromedp.WaitVisible(chromedp.CSS("#spend-today")))
	today, wantToday := api.To.UTC().AddDate(0, 0, -1).Format(time.DateOnly), "0"
	for _, d := range api.ByDay {
		if d.Day == today {
			wantToday = string(d.CostUSD)
		}
	}
	if got := text(t, omarS, "#spend-today"); got != "$"+wantToday {
		t.Fatalf("overview spend today %q, /admin/costs %s", got, wantToday)
	}
	// A durable run in flight: two steps done, waiting for a signal.
	rt := e.srv.Platform().Runtime
	wf, err := durable.Register(rt, "console.onboarding", func(ctx context.Context, in string) (string, error) {
		for _, name := range []string{"create-workspace", "send-welcome"} {
			if _, err := durable.Step(ctx, name, func(context.Context) (string, error) { return name + " " + in, nil }); err != nil {
				return "", err
			}
		}
		return durable.WaitSignal[string](ctx, "go-live", 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	tctx, err := tenancy.WithTenant(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	started, err := wf.Start(tctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := rt.Get(tctx, started.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == durable.StatusWaiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want waiting", started.ID, r.Status)
		}
	}
	run(t, omarS, "runs", chromedp.Navigate(e.url+console.Prefix+"runs"), chromedp.WaitVisible(chromedp.CSS("#runs")))
	if got := text(t, omarS, "#runs"); !strings.Contains(got, started.ID) || !strings.Contains(got, "waiting") || !strings.Contains(got, "go-live") {
		t.Fatalf("runs in flight: %q", got)
	}
	shot(t, omarS, dir, "10-runs")
	run(t, omarS, "the run", chromedp.Navigate(e.url+console.Prefix+"runs/"+started.ID), chromedp.WaitVisible(chromedp.CSS("#steps")))
	steps, err := chromedp.Run(omarS, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("tr.step")).map(r => [1, 2, 3].map(i => r.cells[i].textContent.trim()).join("|"))`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, " ") != "step|create-workspace|completed step|send-welcome|completed" {
		t.Fatalf("steps %q", steps)
	}
	run(t, omarS, "cancel the run",
		chromedp.SetValue(chromedp.CSS("#reason"), "customer left"),
		chromedp.Click(chromedp.CSS("#cancel")),
		chromedp.WaitVisible(chromedp.CSS("#notice")))
	if got := text(t, omarS, "#run-status"); got != "cancelled" {
		t.Fatalf("run after cancel: %q", got)
	}
	shot(t, omarS, dir, "11-run-cancelled")
	if r, err := rt.Get(tctx, started.ID); err != nil || r.Status != durable.StatusCancelled || r.Error != "customer left" {
		t.Fatalf("run after cancel: %+v, %v", r, err)
	}
	// The launch gates: run from the page, the report table rendered.
	run(t, omarS, "gates", chromedp.Navigate(e.url+console.Prefix+"gates"), chromedp.Click(chromedp.CSS("#run-gates")),
		chromedp.WaitVisible(chromedp.CSS("#gates")))
	if got := text(t, omarS, "#gates-score"); !strings.HasPrefix(got, "OVERALL SCORE:") {
		t.Fatalf("gates score %q", got)
	}
	gateRows, err := chromedp.Run(omarS, chromedp.Evaluate[int](`document.querySelectorAll("tr.gate").length`))
	if err != nil || gateRows < 30 {
		t.Fatalf("%d gates shown (%v)", gateRows, err)
	}
	if got := text(t, omarS, `tr.gate[data-id="G1"]`); !strings.Contains(got, "closed") || !strings.Contains(got, "/api/v1/pricing/plans") {
		t.Fatalf("gate G1 row %q", got)
	}
	shot(t, omarS, dir, "12-gates")
	// The overview shows the last report's score.
	run(t, omarS, "overview", chromedp.Navigate(e.url+console.Prefix), chromedp.WaitVisible(chromedp.CSS("#gates-score")))
	if got := text(t, omarS, "#gates-score"); !strings.HasPrefix(got, "OVERALL SCORE:") {
		t.Fatalf("overview gates score %q", got)
	}
	var unrevoked int
	if err := e.db.System.QueryRow(context.Background(), `SELECT count(*) FROM platform.tenancy_api_keys
		WHERE tenant_id = $1 AND revoked_at IS NULL AND 'admin' = ANY(scopes)`, tenant).Scan(&unrevoked); err != nil {
		t.Fatal(err)
	}
	if unrevoked != 0 {
		t.Fatalf("the gates run left %d admin keys", unrevoked)
	}

	// Another tenant's admin sees none of it.
	otherS := session(t, browser)
	signIn(t, otherS, e.url, signToken(t, e.key, claims(other, "olga", "admin")))
	run(t, otherS, "other inbox", chromedp.Navigate(e.url+console.Prefix+"approvals?status=approved"), chromedp.WaitVisible(chromedp.CSS("#no-requests")))
	run(t, otherS, "other queues", chromedp.Navigate(e.url+console.Prefix+"queues"), chromedp.WaitVisible(chromedp.CSS(`tr.queue[data-queue="webhooks"]`)))
	if got := text(t, otherS, `tr.queue[data-queue="webhooks"] td.dead`); got != "0" {
		t.Fatalf("another tenant sees %s dead webhooks", got)
	}
	for _, p := range []string{"approvals/" + held.ApprovalID, fmt.Sprintf("jobs/%d", hook)} {
		resp, err := chromedp.Run(otherS, chromedp.NavigateResponse(e.url+console.Prefix+p))
		if err != nil {
			t.Fatalf("open %s: %v", p, err)
		}
		if resp.Status != http.StatusNotFound {
			t.Fatalf("another tenant's admin opens %s: %d", p, resp.Status)
		}
	}
	shot(t, otherS, dir, "13-other-tenant")

	// The console's own answers carry the policy, as the browser saw them.
	resp, err := chromedp.Run(omarS, chromedp.NavigateResponse(e.url+console.Prefix))
	if err != nil {
		t.Fatal(err)
	}
	if csp := fmt.Sprint(resp.Headers["Content-Security-Policy"]); csp != console.ContentSecurityPolicy {
		t.Fatalf("CSP seen by the browser %v", resp.Headers)
	}
}

func claims(tenant, subject string, scopes ...string) map[string]any {
	return map[string]any{
		"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": subject,
		"tenant_id": tenant, "scopes": scopes,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
}
