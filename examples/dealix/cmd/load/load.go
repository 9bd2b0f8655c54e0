package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// The operations of the mix, as the report names them.
const (
	OpCreate     = "create"      // POST /api/v1/leads with a fresh Idempotency-Key
	OpRetry      = "retry"       // the same POST again, with an earlier key and body
	OpList       = "list"        // GET /api/v1/leads?limit=50
	OpGet        = "get"         // GET /api/v1/leads/{id}
	OpPatch      = "patch"       // PATCH /api/v1/leads/{id} with If-Match
	OpDealCreate = "deal_create" // POST /api/v1/deals (first half of a close)
	OpDealClose  = "deal_close"  // POST /api/v1/deals/{id}/close
)

// opOrder is the order of the report's rows and the chart's legend.
var opOrder = []string{OpCreate, OpRetry, OpList, OpGet, OpPatch, OpDealCreate, OpDealClose}

// Mix weights of the actions; "close" makes a deal then closes it.
type Mix struct {
	Create, Retry, List, Get, Patch, Close int
}

// DefaultMix is a sales team's day: mostly reads, a steady trickle of new
// leads, some retried by flaky clients, edits, and a few closed deals.
var DefaultMix = Mix{Create: 25, Retry: 10, List: 20, Get: 25, Patch: 15, Close: 5}

// ParseMix reads "create=25,retry=10,list=20,get=25,patch=15,close=5";
// actions left out weigh 0.
func ParseMix(s string) (Mix, error) {
	var m Mix
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 {
			return m, fmt.Errorf("load: mix %q: want name=weight pairs", s)
		}
		switch name {
		case "create":
			m.Create = n
		case "retry":
			m.Retry = n
		case "list":
			m.List = n
		case "get":
			m.Get = n
		case "patch":
			m.Patch = n
		case "close":
			m.Close = n
		default:
			return m, fmt.Errorf("load: mix: unknown action %q (create, retry, list, get, patch, close)", name)
		}
	}
	if m.total() == 0 {
		return m, fmt.Errorf("load: mix %q weighs nothing", s)
	}
	return m, nil
}

func (m Mix) total() int { return m.Create + m.Retry + m.List + m.Get + m.Patch + m.Close }

func (m Mix) String() string {
	return fmt.Sprintf("create=%d,retry=%d,list=%d,get=%d,patch=%d,close=%d", m.Create, m.Retry, m.List, m.Get, m.Patch, m.Close)
}

// pick draws an action by weight.
func (m Mix) pick(r *rand.Rand) string {
	n := r.IntN(m.total())
	for _, a := range []struct {
		w  int
		op string
	}{{m.Create, "create"}, {m.Retry, "retry"}, {m.List, "list"}, {m.Get, "get"}, {m.Patch, "patch"}, {m.Close, "close"}} {
		if n < a.w {
			return a.op
		}
		n -= a.w
	}
	return "create"
}

// Options configure one run. Run refuses a run without both bounds.
type Options struct {
	// Target is the server's base URL; loopback only.
	Target string
	// Duration bounds the run's time (at most MaxDuration).
	Duration time.Duration
	// MaxRequests bounds the run's request count.
	MaxRequests int
	// Rate is the target rate in requests/s over all tenants (open loop:
	// requests start on schedule, and latency is measured from the
	// scheduled start, so a slow server cannot hide its queue). 0 runs
	// closed loop: Concurrency workers each send their next request when
	// the previous one answered.
	Rate float64
	// Concurrency is the closed loop's workers, or the open loop's bound
	// of requests in flight. Default 16.
	Concurrency int
	// Mix weighs the actions. Default DefaultMix.
	Mix Mix
	// Tenants is how many tenants the JWTs name (HMACKey needed). Default 4.
	Tenants int
	// HMACKey signs HS256 JWTs the server accepts (its DEALIX_JWT_HMAC_KEY).
	// With it, each tenant also gets an API key made through the API, so
	// both credentials carry load.
	HMACKey []byte
	// Issuer and Audience of the minted JWTs; defaults dealix-dev and
	// dealix-api.
	Issuer, Audience string
	// APIKeys are extra credentials (each its own tenant's, unknown here).
	APIKeys []string
	// Timeout bounds each request. Default 10s.
	Timeout time.Duration
	// DealCreateBody and DealCloseBody are the JSON bodies of the close
	// action; {{lead_id}} is replaced by a lead of the tenant.
	DealCreateBody, DealCloseBody string
	// Bare sends X-Tenant-ID instead of credentials and only creates: the
	// target is the bare handler (see bare.go).
	Bare bool
	// Prefill creates this many leads per tenant before the run, not
	// measured: lists then return full pages and retries have keys to
	// replay from the first request.
	Prefill int
	// Label names the run in the report.
	Label string
	// OnAnswer, when set, is called after every measured request, from
	// the worker that sent it (so it must be safe for concurrent use):
	// a caller can keep the acknowledged writes and check them later.
	OnAnswer func(Answer)
}

// Answer is one measured request and what came back. Status is 0 and Err
// set when no answer came (the connection failed or timed out): the
// request may or may not have taken effect.
type Answer struct {
	Op        string
	Method    string
	Path      string
	ReqHeader http.Header
	ReqBody   []byte
	Status    int
	Header    http.Header
	Body      []byte
	Err       error
}

// MaxDuration is the longest run the tool accepts.
const MaxDuration = time.Hour

// Default bodies of the close action.
const (
	DefaultDealCreateBody = `{"lead_id":"{{lead_id}}","title":"Load test deal","amount":150000,"currency":"SAR"}`
	DefaultDealCloseBody  = `{"outcome":"won"}`
)

func (o Options) withDefaults() (Options, error) {
	if o.Duration <= 0 || o.Duration > MaxDuration {
		return o, fmt.Errorf("load: duration %v: want > 0 and <= %v", o.Duration, MaxDuration)
	}
	if o.MaxRequests <= 0 {
		return o, fmt.Errorf("load: max requests %d: want > 0", o.MaxRequests)
	}
	if o.Rate < 0 {
		return o, fmt.Errorf("load: rate %v: want >= 0", o.Rate)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Mix.total() == 0 {
		o.Mix = DefaultMix
	}
	if o.Tenants <= 0 {
		o.Tenants = 4
	}
	if o.Issuer == "" {
		o.Issuer = "dealix-dev"
	}
	if o.Audience == "" {
		o.Audience = "dealix-api"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DealCreateBody == "" {
		o.DealCreateBody = DefaultDealCreateBody
	}
	if o.DealCloseBody == "" {
		o.DealCloseBody = DefaultDealCloseBody
	}
	if o.Bare {
		o.Mix = Mix{Create: 1}
	}
	if !o.Bare && o.HMACKey == nil && len(o.APIKeys) == 0 {
		return o, errors.New("load: no credentials: give the server's HMAC key (DEALIX_JWT_HMAC_KEY) or API keys")
	}
	return o, nil
}

// credential is one caller: a header to send and the tenant's state.
type credential struct {
	name   string // "jwt" or "api-key"
	header [2]string
	tenant *tenantState
}

// tenantState is what the load learned about a tenant: its leads and the
// keys its creates used, for later gets, patches and retries.
type tenantState struct {
	id    string
	mu    sync.Mutex
	leads []leadRef
	sent  []sentCreate
}

type leadRef struct{ id, etag string }

// sentCreate is an acknowledged create, to be retried with the same key
// and body by the same credential.
type sentCreate struct {
	cred *credential
	key  string
	body []byte
	id   string
}

const keepPerTenant = 2000 // bounds the state kept per tenant

func (t *tenantState) addLead(l leadRef) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.leads) >= keepPerTenant {
		t.leads[rand.IntN(len(t.leads))] = l
		return
	}
	t.leads = append(t.leads, l)
}

func (t *tenantState) setETag(id, etag string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.leads {
		if t.leads[i].id == id {
			t.leads[i].etag = etag
			return
		}
	}
}

func (t *tenantState) someLead(r *rand.Rand) (leadRef, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.leads) == 0 {
		return leadRef{}, false
	}
	return t.leads[r.IntN(len(t.leads))], true
}

func (t *tenantState) addSent(s sentCreate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sent) >= keepPerTenant {
		t.sent[rand.IntN(len(t.sent))] = s
		return
	}
	t.sent = append(t.sent, s)
}

func (t *tenantState) someSent(r *rand.Rand) (sentCreate, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sent) == 0 {
		return sentCreate{}, false
	}
	return t.sent[r.IntN(len(t.sent))], true
}

// runner is one run in progress.
type runner struct {
	opt    Options
	base   *url.URL
	client *http.Client
	creds  []*credential
	rec    *recorder
	issued atomic.Int64 // requests begun, against MaxRequests
	noDeal atomic.Bool  // the server has no deals routes
	id     string       // names this run's leads
	seq    atomic.Int64
	notes  sync.Map
	// setup is true while prefilling: requests are neither counted against
	// the budget nor recorded.
	setup bool
}

var errBudget = errors.New("load: request budget spent")

// Run drives the target with opt and returns the report. It stops at the
// first of opt.Duration, opt.MaxRequests and ctx's end.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	base, err := checkTarget(opt.Target)
	if err != nil {
		return nil, err
	}
	r := &runner{opt: opt, base: base, client: newClient(opt.Concurrency, opt.Timeout), rec: newRecorder(),
		id: uuid.NewString()[:8]}
	defer r.client.CloseIdleConnections()
	if err := r.setupCredentials(ctx); err != nil {
		return nil, err
	}
	if opt.Mix.Close > 0 {
		r.probeDeals(ctx)
	}
	if opt.Prefill > 0 && !opt.Bare {
		if err := r.prefill(ctx); err != nil {
			return nil, err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, opt.Duration)
	defer cancel()
	start := time.Now()
	if opt.Rate > 0 {
		r.openLoop(runCtx, start)
	} else {
		r.closedLoop(runCtx)
	}
	elapsed := time.Since(start)
	rep := r.rec.report(elapsed)
	rep.Label, rep.Target = opt.Label, opt.Target
	rep.Concurrency, rep.Rate, rep.Mix = opt.Concurrency, opt.Rate, opt.Mix.String()
	rep.Mode = "closed loop"
	if opt.Rate > 0 {
		rep.Mode = "open loop (latency from the scheduled start)"
	}
	rep.Credentials = len(r.creds)
	tenants := map[*tenantState]bool{}
	for _, c := range r.creds {
		tenants[c.tenant] = true
	}
	rep.Tenants = len(tenants)
	rep.Budget = opt.MaxRequests
	rep.Prefill = opt.Prefill
	rep.Machine = machine()
	r.notes.Range(func(k, _ any) bool { rep.Notes = append(rep.Notes, k.(string)); return true })
	return rep, nil
}

func (r *runner) note(s string) { r.notes.Store(s, true) }

// setupCredentials mints a JWT per tenant and, through it, an API key per
// tenant (both then carry load), and adds the given API keys. Set-up
// requests are not part of the report.
func (r *runner) setupCredentials(ctx context.Context) error {
	o := r.opt
	if o.Bare {
		for range o.Tenants {
			t := &tenantState{id: uuid.NewString()}
			r.creds = append(r.creds, &credential{name: "bare", header: [2]string{"X-Tenant-ID", t.id}, tenant: t})
		}
		return nil
	}
	if o.HMACKey != nil {
		for i := range o.Tenants {
			t := &tenantState{id: uuid.NewString()}
			tok, err := mintJWT(o.HMACKey, o.Issuer, o.Audience, fmt.Sprintf("load-user-%d", i), t.id,
				[]string{"admin", "leads", "deals"}, o.Duration+time.Hour)
			if err != nil {
				return err
			}
			jwtCred := &credential{name: "jwt", header: [2]string{"Authorization", "Bearer " + tok}, tenant: t}
			r.creds = append(r.creds, jwtCred)
			key, err := r.makeAPIKey(ctx, jwtCred)
			if err != nil {
				return err
			}
			if key != "" {
				r.creds = append(r.creds, &credential{name: "api-key", header: [2]string{"X-API-Key", key}, tenant: t})
			}
		}
	}
	for _, k := range o.APIKeys {
		r.creds = append(r.creds, &credential{name: "api-key", header: [2]string{"X-API-Key", k}, tenant: &tenantState{id: "(api key)"}})
	}
	return nil
}

// makeAPIKey issues an API key for the JWT's tenant through the API.
func (r *runner) makeAPIKey(ctx context.Context, c *credential) (string, error) {
	req, err := r.newRequest(ctx, c, http.MethodPost, "/api/v1/api-keys", []byte(`{"name":"load tool","scopes":["leads","deals"]}`))
	if err != nil {
		return "", err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("load: set-up: issue an API key: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		if resp.StatusCode == http.StatusUnauthorized {
			return "", fmt.Errorf("load: set-up: the server refused the minted JWT (401): is the HMAC key its DEALIX_JWT_HMAC_KEY? %s", body)
		}
		r.note(fmt.Sprintf("API keys not issued (POST /api/v1/api-keys answered %d): JWTs only", resp.StatusCode))
		return "", nil
	}
	var out struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Key == "" {
		r.note("API keys not issued (no key in the answer): JWTs only")
		return "", nil
	}
	return out.Key, nil
}

// mintJWT signs an HS256 token as the reference server's development key
// does (kid dealix-dev).
func mintJWT(key []byte, iss, aud, sub, tenant string, scopes []string, ttl time.Duration) (string, error) {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": iss, "aud": aud, "sub": sub, "tenant_id": tenant, "scopes": scopes,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	tok.Header["kid"] = "dealix-dev"
	return tok.SignedString(key)
}

// closedLoop runs Concurrency workers until the time or the budget ends.
func (r *runner) closedLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range r.opt.Concurrency {
		rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := r.action(ctx, rng, time.Time{}); errors.Is(err, errBudget) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// openLoop starts actions on a fixed schedule; at most Concurrency are in
// flight, and an action that waits for a slot has the wait in its latency.
func (r *runner) openLoop(ctx context.Context, start time.Time) {
	interval := time.Duration(float64(time.Second) / r.opt.Rate)
	sem := make(chan struct{}, r.opt.Concurrency)
	var wg sync.WaitGroup
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := int64(0); ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil || r.issued.Load() >= int64(r.opt.MaxRequests) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		rng := rand.New(rand.NewPCG(uint64(i), uint64(due.UnixNano())))
		wg.Go(func() {
			defer func() { <-sem }()
			_ = r.action(ctx, rng, due)
		})
	}
	wg.Wait()
}

// action performs one drawn action. due is the scheduled start (open
// loop) or zero.
func (r *runner) action(ctx context.Context, rng *rand.Rand, due time.Time) error {
	c := r.creds[rng.IntN(len(r.creds))]
	switch r.opt.Mix.pick(rng) {
	case "retry":
		if s, ok := c.tenant.someSent(rng); ok {
			return r.retry(ctx, s, due)
		}
	case "list":
		return r.list(ctx, c, due)
	case "get":
		if l, ok := c.tenant.someLead(rng); ok {
			return r.get(ctx, c, l, due)
		}
	case "patch":
		if l, ok := c.tenant.someLead(rng); ok {
			return r.patch(ctx, c, l, due)
		}
	case "close":
		if l, ok := c.tenant.someLead(rng); ok && !r.noDeal.Load() {
			return r.closeDeal(ctx, c, l, due)
		}
		if r.noDeal.Load() {
			return r.list(ctx, c, due) // stand-in read, so the mix keeps its pace
		}
	}
	return r.create(ctx, c, due)
}

func (r *runner) newRequest(ctx context.Context, c *credential, method, path string, body []byte) (*http.Request, error) {
	u := r.base.JoinPath(path)
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u = r.base.JoinPath(path[:i])
		u.RawQuery = path[i+1:]
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(c.header[0], c.header[1])
	return req, nil
}

// result is a finished request with its body.
type result struct {
	status int
	header http.Header
	body   []byte
}

// send performs one request of op and records it. A transport error is
// recorded as status 0.
func (r *runner) send(ctx context.Context, op string, req *http.Request, due time.Time) (result, error) {
	if !r.setup && r.issued.Add(1) > int64(r.opt.MaxRequests) {
		return result{}, errBudget
	}
	start := time.Now()
	if due.IsZero() || due.After(start) {
		due = start
	}
	resp, err := r.client.Do(req)
	var res result
	if err == nil {
		res.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		res.status, res.header = resp.StatusCode, resp.Header
	}
	end := time.Now()
	if r.setup {
		return res, err
	}
	if err != nil && ctx.Err() != nil {
		// Cut by the end of the run, not answered by the server: not a
		// sample of the server's behaviour.
		r.rec.cut()
		return res, err
	}
	replayed := res.header.Get("Idempotent-Replayed") == "true"
	r.rec.add(op, res.status, end.Sub(due), end, replayed, err)
	if r.opt.OnAnswer != nil {
		a := Answer{Op: op, Method: req.Method, Path: req.URL.Path, ReqHeader: req.Header,
			Status: res.status, Header: res.header, Body: res.body, Err: err}
		if req.GetBody != nil {
			if rc, gerr := req.GetBody(); gerr == nil {
				a.ReqBody, _ = io.ReadAll(rc)
			}
		}
		r.opt.OnAnswer(a)
	}
	return res, err
}

func (r *runner) create(ctx context.Context, c *credential, due time.Time) error {
	n := r.seq.Add(1)
	// The name is unique across runs, so a lead can be traced to its
	// request.
	body := fmt.Appendf(nil, `{"name":"Load lead %s-%d","company":"Load Co %d","email":"lead%d@load.example","source":"load"}`, r.id, n, n%97, n)
	key := uuid.NewString()
	req, err := r.newRequest(ctx, c, http.MethodPost, "/api/v1/leads", body)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", key)
	res, err := r.send(ctx, OpCreate, req, due)
	if err != nil || res.status != http.StatusCreated {
		return err
	}
	var out struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(res.body, &out) == nil && out.ID != "" {
		c.tenant.addLead(leadRef{id: out.ID, etag: res.header.Get("ETag")})
		c.tenant.addSent(sentCreate{cred: c, key: key, body: body, id: out.ID})
	}
	return nil
}

func (r *runner) retry(ctx context.Context, s sentCreate, due time.Time) error {
	req, err := r.newRequest(ctx, s.cred, http.MethodPost, "/api/v1/leads", s.body)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", s.key)
	_, err = r.send(ctx, OpRetry, req, due)
	return err
}

func (r *runner) list(ctx context.Context, c *credential, due time.Time) error {
	req, err := r.newRequest(ctx, c, http.MethodGet, "/api/v1/leads?limit=50", nil)
	if err != nil {
		return err
	}
	_, err = r.send(ctx, OpList, req, due)
	return err
}

func (r *runner) get(ctx context.Context, c *credential, l leadRef, due time.Time) error {
	req, err := r.newRequest(ctx, c, http.MethodGet, "/api/v1/leads/"+l.id, nil)
	if err != nil {
		return err
	}
	res, err := r.send(ctx, OpGet, req, due)
	if err == nil && res.status == http.StatusOK {
		c.tenant.setETag(l.id, res.header.Get("ETag"))
	}
	return err
}

func (r *runner) patch(ctx context.Context, c *credential, l leadRef, due time.Time) error {
	body := fmt.Appendf(nil, `{"notes":"touched by the load tool (%d)"}`, r.seq.Add(1))
	req, err := r.newRequest(ctx, c, http.MethodPatch, "/api/v1/leads/"+l.id, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("If-Match", cmp.Or(l.etag, "*"))
	res, err := r.send(ctx, OpPatch, req, due)
	if err != nil {
		return err
	}
	switch res.status {
	case http.StatusOK:
		c.tenant.setETag(l.id, res.header.Get("ETag"))
	case http.StatusPreconditionFailed:
		// Another worker changed it first: learn the current tag.
		var p struct {
			Current string `json:"current_etag"`
		}
		if json.Unmarshal(res.body, &p) == nil && p.Current != "" {
			c.tenant.setETag(l.id, p.Current)
		}
	}
	return nil
}

// prefill creates Prefill leads for each tenant, Concurrency at a time,
// through the tenant's first credential.
func (r *runner) prefill(ctx context.Context) error {
	r.setup = true
	defer func() { r.setup = false }()
	seen := map[*tenantState]bool{}
	jobs := make(chan *credential)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range r.opt.Concurrency {
		wg.Go(func() {
			for c := range jobs {
				if err := r.create(ctx, c, time.Time{}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	for _, c := range r.creds {
		if seen[c.tenant] {
			continue
		}
		seen[c.tenant] = true
		for range r.opt.Prefill {
			jobs <- c
		}
	}
	close(jobs)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("load: prefill: %d creates failed", n)
	}
	return nil
}

// probeDeals asks whether the server has the deals routes, with a POST
// that cannot create anything (no Idempotency-Key, no body): a server
// without them answers 404 or 405, and the close action is then left out
// of the run with a note rather than counted as errors.
func (r *runner) probeDeals(ctx context.Context) {
	req, err := r.newRequest(ctx, r.creds[0], http.MethodPost, "/api/v1/deals", []byte(`{}`))
	if err != nil {
		return
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
		r.noDeal.Store(true)
		r.note(fmt.Sprintf("deal close skipped: POST /api/v1/deals answered %d (the server has no deals route); the close action was replaced by a list", resp.StatusCode))
	}
}

// closeDeal opens a deal on a lead and closes it, each with its own
// Idempotency-Key. When the server has no deals route (404 or 405), the
// action is dropped from the rest of the run, with a note.
func (r *runner) closeDeal(ctx context.Context, c *credential, l leadRef, due time.Time) error {
	body := []byte(strings.ReplaceAll(r.opt.DealCreateBody, "{{lead_id}}", l.id))
	req, err := r.newRequest(ctx, c, http.MethodPost, "/api/v1/deals", body)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", uuid.NewString())
	res, err := r.send(ctx, OpDealCreate, req, due)
	if err != nil {
		return err
	}
	if res.status == http.StatusNotFound || res.status == http.StatusMethodNotAllowed {
		if !r.noDeal.Swap(true) {
			r.note(fmt.Sprintf("deal close skipped: POST /api/v1/deals answered %d (the server has no deals route); the close action was replaced by a list", res.status))
		}
		return nil
	}
	if res.status != http.StatusCreated && res.status != http.StatusOK {
		return nil
	}
	var out struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(res.body, &out) != nil || out.ID == "" {
		r.note("deal close skipped for a deal whose create answer had no id")
		return nil
	}
	closeBody := []byte(strings.ReplaceAll(r.opt.DealCloseBody, "{{lead_id}}", l.id))
	req, err = r.newRequest(ctx, c, http.MethodPost, "/api/v1/deals/"+out.ID+"/close", closeBody)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", uuid.NewString())
	_, err = r.send(ctx, OpDealClose, req, time.Time{})
	return err
}
