package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/ratelimit"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

func TestLeadsAreIsolatedByTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.token(newTenant()), e.token(newTenant())
	mine := e.createLead(a, `{"name":"Nora","owner":"sara"}`)

	missing := e.do("GET", "/api/v1/leads/"+uuid.NewString(), "", bearer(b)...)
	wantProblem(t, missing, http.StatusNotFound)

	// Every lead endpoint answers B about A's lead exactly as about a lead
	// that does not exist.
	get := e.do("GET", "/api/v1/leads/"+mine.ID, "", bearer(b)...)
	wantProblem(t, get, http.StatusNotFound)
	if !equalBytes(get.body, missing.body) {
		t.Fatalf("another tenant's lead: %s; a missing lead: %s", get.body, missing.body)
	}
	for _, ifMatch := range []string{"*", `"v1"`} {
		patch := e.do("PATCH", "/api/v1/leads/"+mine.ID, `{"name":"stolen"}`, with(bearer(b), "If-Match", ifMatch)...)
		wantProblem(t, patch, http.StatusNotFound)
		missingPatch := e.do("PATCH", "/api/v1/leads/"+uuid.NewString(), `{"name":"stolen"}`, with(bearer(b), "If-Match", ifMatch)...)
		if !equalBytes(patch.body, missingPatch.body) {
			t.Fatalf("PATCH another tenant's lead: %s; a missing one: %s", patch.body, missingPatch.body)
		}
	}
	// Retried with an idempotency key, the refusal is still a 404.
	patch := e.do("PATCH", "/api/v1/leads/"+mine.ID, `{"name":"stolen"}`, with(bearer(b), "If-Match", "*", "Idempotency-Key", "k1")...)
	wantProblem(t, patch, http.StatusNotFound)

	var page struct{ Items []lead }
	e.do("GET", "/api/v1/leads", "", bearer(b)...).json(t, &page)
	if len(page.Items) != 0 {
		t.Fatalf("tenant B lists %d leads, want none", len(page.Items))
	}

	var after lead
	r := e.do("GET", "/api/v1/leads/"+mine.ID, "", bearer(a)...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &after)
	if after.Name != "Nora" || after.Version != 1 {
		t.Fatalf("A's lead after B's attempts: %+v", after)
	}
}

func TestCreateRetriedWithOneKeyCreatesOneLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	h := with(bearer(e.token(tenant)), "Idempotency-Key", "create-once")
	body := `{"name":"Faisal","company":"Jeddah Clinics"}`

	first := e.do("POST", "/api/v1/leads", body, h...)
	wantStatus(t, first, http.StatusCreated)
	retry := e.do("POST", "/api/v1/leads", body, h...)
	wantStatus(t, retry, http.StatusCreated)
	if !equalBytes(first.body, retry.body) {
		t.Fatalf("replay differs:\n%s\n%s", first.body, retry.body)
	}
	if retry.Header.Get("Idempotent-Replayed") != "true" || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("Idempotent-Replayed: first %q, retry %q", first.Header.Get("Idempotent-Replayed"), retry.Header.Get("Idempotent-Replayed"))
	}
	if first.Header.Get("Location") != retry.Header.Get("Location") || first.Header.Get("ETag") != retry.Header.Get("ETag") {
		t.Fatal("replay lost Location or ETag")
	}
	var n int
	if err := e.db.System.QueryRow(context.Background(), "SELECT count(*) FROM dealix.leads WHERE tenant_id = $1", tenant).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d leads, want 1", n)
	}

	// The same key with another body is refused, not run.
	wantProblem(t, e.do("POST", "/api/v1/leads", `{"name":"Other"}`, h...), http.StatusUnprocessableEntity)
	// No key at all: 400, as the Idempotency-Key draft says.
	p := wantProblem(t, e.do("POST", "/api/v1/leads", body, bearer(e.token(tenant))...), http.StatusBadRequest)
	if !strings.Contains(p["detail"].(string), "Idempotency-Key") {
		t.Fatalf("detail %q does not name the header", p["detail"])
	}
}

func TestAuthenticationFailuresAreProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": "u",
			"tenant_id": tenant, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		mod(c)
		return c
	}
	otherKey := make([]byte, 32)
	cases := []struct {
		name    string
		headers []string
		status  int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"garbage token", bearer("not.a.jwt"), http.StatusUnauthorized},
		{"expired token", bearer(signToken(t, e.key, claims(func(c jwt.MapClaims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}))), http.StatusUnauthorized},
		{"other signer", bearer(signToken(t, otherKey, claims(func(jwt.MapClaims) {}))), http.StatusUnauthorized},
		{"wrong audience", bearer(signToken(t, e.key, claims(func(c jwt.MapClaims) { c["aud"] = "elsewhere" }))), http.StatusUnauthorized},
		{"malformed API key", []string{"X-API-Key", "dlx_nope"}, http.StatusUnauthorized},
		{"no tenant claim", bearer(signToken(t, e.key, claims(func(c jwt.MapClaims) { delete(c, "tenant_id") }))), http.StatusForbidden},
		{"tenant not a UUID", bearer(signToken(t, e.key, claims(func(c jwt.MapClaims) { c["tenant_id"] = "acme" }))), http.StatusForbidden},
	}
	for _, c := range cases {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/api/v1/leads", ""},
			{"POST", "/api/v1/leads", `{"name":"x"}`},
			{"GET", "/api/v1/api-keys", ""},
		} {
			r := e.do(req.method, req.path, req.body, with(c.headers, "Idempotency-Key", "k")...)
			wantProblem(t, r, c.status)
			if c.status == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s: 401 without a Bearer challenge", c.name)
			}
		}
	}
}

func TestAPIKeysLifecycleAndAdminScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenant := newTenant()
	admin := bearer(e.token(tenant, "admin"))
	user := bearer(e.token(tenant, "leads"))

	wantProblem(t, e.do("GET", "/api/v1/api-keys", "", user...), http.StatusForbidden)
	wantProblem(t, e.do("POST", "/api/v1/api-keys", `{"name":"ci"}`, user...), http.StatusForbidden)

	r := e.do("POST", "/api/v1/api-keys", `{"name":"ci","scopes":["leads"]}`, admin...)
	wantStatus(t, r, http.StatusCreated)
	var issued struct{ ID, Key, Prefix string }
	r.json(t, &issued)
	if !strings.HasPrefix(issued.Key, issued.Prefix+"_") {
		t.Fatalf("issued %+v", issued)
	}
	wantProblem(t, e.do("POST", "/api/v1/api-keys", `{"name":""}`, admin...), http.StatusBadRequest)

	withKey := []string{"X-API-Key", issued.Key}
	wantStatus(t, e.do("GET", "/api/v1/leads", "", withKey...), http.StatusOK)
	wantStatus(t, e.do("GET", "/api/v1/leads", "", "Authorization", "Bearer "+issued.Key), http.StatusOK)
	// A key without the admin scope cannot manage keys.
	wantProblem(t, e.do("GET", "/api/v1/api-keys", "", withKey...), http.StatusForbidden)

	var list struct {
		Items []struct {
			ID        string
			RevokedAt *time.Time `json:"revoked_at"`
		}
	}
	e.do("GET", "/api/v1/api-keys", "", admin...).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].ID != issued.ID {
		t.Fatalf("list %+v", list)
	}
	// Another tenant's admin cannot revoke it: 404, as for a missing key.
	other := bearer(e.token(newTenant(), "admin"))
	wantProblem(t, e.do("DELETE", "/api/v1/api-keys/"+issued.ID, "", other...), http.StatusNotFound)
	wantStatus(t, e.do("GET", "/api/v1/leads", "", withKey...), http.StatusOK)

	wantStatus(t, e.do("DELETE", "/api/v1/api-keys/"+issued.ID, "", admin...), http.StatusNoContent)
	wantProblem(t, e.do("DELETE", "/api/v1/api-keys/"+uuid.NewString(), "", admin...), http.StatusNotFound)
	r = e.do("GET", "/api/v1/leads", "", withKey...)
	wantProblem(t, r, http.StatusUnauthorized)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("revoked key: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}

// TestAPIKeyCacheBoundsRevocationOnOtherInstances shows what
// Config.APIKeyCacheTTL trades: the instance that revokes a key refuses it
// at once, an instance without the cache refuses it at its next request,
// and an instance that cached the key accepts it until its entry expires.
func TestAPIKeyCacheBoundsRevocationOnOtherInstances(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	urls := urlsFor(t, db)
	revoker := newEnvOn(t, db, urls) // the default TTL
	cached := newEnvOn(t, db, urls, func(c *server.Config) { c.APIKeyCacheTTL = time.Hour })
	uncached := newEnvOn(t, db, urls, func(c *server.Config) { c.APIKeyCacheTTL = -1 })

	admin := bearer(revoker.token(newTenant(), "admin"))
	r := revoker.do("POST", "/api/v1/api-keys", `{"name":"shared","scopes":["leads"]}`, admin...)
	wantStatus(t, r, http.StatusCreated)
	var issued struct{ ID, Key string }
	r.json(t, &issued)
	withKey := []string{"X-API-Key", issued.Key}
	for _, e := range []*env{revoker, cached, uncached} {
		wantStatus(t, e.do("GET", "/api/v1/leads", "", withKey...), http.StatusOK)
	}

	wantStatus(t, revoker.do("DELETE", "/api/v1/api-keys/"+issued.ID, "", admin...), http.StatusNoContent)
	wantProblem(t, revoker.do("GET", "/api/v1/leads", "", withKey...), http.StatusUnauthorized)
	wantProblem(t, uncached.do("GET", "/api/v1/leads", "", withKey...), http.StatusUnauthorized)
	wantStatus(t, cached.do("GET", "/api/v1/leads", "", withKey...), http.StatusOK)
}

// The server's connections carry its application_name, so an operator
// (and the crash tests) can tell them apart in pg_stat_activity.
func TestServerConnectionsNameThemselves(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantStatus(t, e.do("GET", "/api/v1/leads", "", bearer(e.token(newTenant()))...), http.StatusOK)
	var named int
	if err := e.db.Admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2`, e.db.Name, server.ApplicationName).Scan(&named); err != nil {
		t.Fatal(err)
	}
	if named == 0 {
		t.Fatalf("no backend of the server's pools is named %q", server.ApplicationName)
	}
}

func TestRateLimitPerTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *server.Config) { c.RateLimit = ratelimit.Rate{Requests: 3, Window: time.Minute} })
	busy := bearer(e.token(newTenant()))
	for i := range 3 {
		r := e.do("GET", "/api/v1/leads", "", busy...)
		wantStatus(t, r, http.StatusOK)
		if want := fmt.Sprintf(`"default";r=%d;`, 2-i); !strings.HasPrefix(r.Header.Get("RateLimit"), want) {
			t.Fatalf("request %d: RateLimit %q, want prefix %q", i+1, r.Header.Get("RateLimit"), want)
		}
	}
	r := e.do("GET", "/api/v1/leads", "", busy...)
	wantProblem(t, r, http.StatusTooManyRequests)
	if got := r.Header.Get("RateLimit-Policy"); got != `"default";q=3;w=60` {
		t.Fatalf("RateLimit-Policy %q", got)
	}
	if !strings.HasPrefix(r.Header.Get("RateLimit"), `"default";r=0;`) {
		t.Fatalf("RateLimit %q", r.Header.Get("RateLimit"))
	}
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Another tenant has its own bucket; public routes have none.
	wantStatus(t, e.do("GET", "/api/v1/leads", "", bearer(e.token(newTenant()))...), http.StatusOK)
	wantStatus(t, e.do("GET", "/api/v1/pricing/plans", ""), http.StatusOK)
}

func TestCORSAllowlist(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	preflight := func(origin string) response {
		return e.do("OPTIONS", "/api/v1/leads", "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, idempotency-key, content-type")
	}
	ok := preflight(allowedOrigin)
	wantStatus(t, ok, http.StatusNoContent)
	if ok.Header.Get("Access-Control-Allow-Origin") != allowedOrigin {
		t.Fatalf("allowed preflight: Allow-Origin %q", ok.Header.Get("Access-Control-Allow-Origin"))
	}
	for _, want := range []string{"POST", "PATCH"} {
		if !strings.Contains(ok.Header.Get("Access-Control-Allow-Methods"), want) {
			t.Fatalf("Allow-Methods %q lacks %s", ok.Header.Get("Access-Control-Allow-Methods"), want)
		}
	}
	for _, want := range []string{"Authorization", "Idempotency-Key", "Content-Type", "If-Match"} {
		if !strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), want) {
			t.Fatalf("Allow-Headers %q lacks %s", ok.Header.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if ok.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatal("credentials mode must stay off")
	}

	for _, r := range []response{preflight("https://evil.example.com"), e.do("GET", "/api/v1/pricing/plans", "", "Origin", "https://evil.example.com")} {
		for name := range r.Header {
			if strings.HasPrefix(name, "Access-Control-") {
				t.Fatalf("other origin got %s: %q", name, r.Header.Get(name))
			}
		}
		if !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
			t.Fatal("an origin-dependent answer lacks Vary: Origin")
		}
	}
	simple := e.do("GET", "/api/v1/pricing/plans", "", "Origin", allowedOrigin)
	if simple.Header.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(simple.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("allowed origin's GET: %v", simple.Header)
	}
}

func TestUpdateNeedsCurrentETag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := bearer(e.token(newTenant()))
	l := e.createLead(tok[1][len("Bearer "):], `{"name":"Layla"}`)
	path := "/api/v1/leads/" + l.ID

	get := e.do("GET", path, "", tok...)
	wantStatus(t, get, http.StatusOK)
	etag := get.Header.Get("ETag")
	if etag != `"v1"` {
		t.Fatalf("ETag %q", etag)
	}
	wantProblem(t, e.do("PATCH", path, `{"status":"contacted"}`, tok...), http.StatusPreconditionRequired)

	upd := e.do("PATCH", path, `{"status":"contacted","owner":"sara"}`, with(tok, "If-Match", etag)...)
	wantStatus(t, upd, http.StatusOK)
	if upd.Header.Get("ETag") != `"v2"` {
		t.Fatalf("ETag after update %q", upd.Header.Get("ETag"))
	}
	var got lead
	upd.json(t, &got)
	if got.Status != "contacted" || got.Owner == nil || *got.Owner != "sara" || got.Name != "Layla" {
		t.Fatalf("updated lead %+v", got)
	}

	stale := e.do("PATCH", path, `{"status":"lost"}`, with(tok, "If-Match", etag)...)
	p := wantProblem(t, stale, http.StatusPreconditionFailed)
	if p["current_etag"] != `"v2"` {
		t.Fatalf("412 names current_etag %v", p["current_etag"])
	}
	// The stale write changed nothing.
	e.do("GET", path, "", tok...).json(t, &got)
	if got.Status != "contacted" || got.Version != 2 {
		t.Fatalf("after the stale PATCH: %+v", got)
	}
	// A merge patch may clear an optional member, never a required one.
	wantStatus(t, e.do("PATCH", path, `{"owner":null}`, with(tok, "If-Match", `"v2"`)...), http.StatusOK)
	wantProblem(t, e.do("PATCH", path, `{"name":null}`, with(tok, "If-Match", `"v3"`)...), http.StatusBadRequest)
}

func TestClientMistakesAreNever500(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *server.Config) { c.MaxBodyBytes = 1024 })
	tok := bearer(e.token(newTenant()))
	l := e.createLead(tok[1][len("Bearer "):], `{"name":"Omar"}`)
	big := `{"name":"` + strings.Repeat("x", 2048) + `"}`
	key := func() []string { return with(tok, "Idempotency-Key", uuid.NewString()) }
	patch := func() []string { return with(tok, "If-Match", "*") }

	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
	}{
		{"malformed JSON", "POST", "/api/v1/leads", `{"name":`, key(), 400},
		{"not JSON", "POST", "/api/v1/leads", `name=x`, key(), 400},
		{"unknown field", "POST", "/api/v1/leads", `{"name":"x","tenant_id":"` + uuid.NewString() + `"}`, key(), 400},
		{"wrong type", "POST", "/api/v1/leads", `{"name":42}`, key(), 400},
		{"array body", "POST", "/api/v1/leads", `[]`, key(), 400},
		{"two values", "POST", "/api/v1/leads", `{"name":"x"} {"name":"y"}`, key(), 400},
		{"empty body", "POST", "/api/v1/leads", ``, with(key(), "Content-Type", "application/json"), 400},
		{"NUL in name", "POST", "/api/v1/leads", `{"name":"a\u0000b"}`, key(), 400},
		{"bad status", "POST", "/api/v1/leads", `{"name":"x","status":"maybe"}`, key(), 400},
		{"bad email", "POST", "/api/v1/leads", `{"name":"x","email":"not-an-address"}`, key(), 400},
		{"missing name", "POST", "/api/v1/leads", `{"company":"x"}`, key(), 400},
		{"oversized create", "POST", "/api/v1/leads", big, key(), 413},
		{"oversized patch", "PATCH", "/api/v1/leads/" + l.ID, big, patch(), 413},
		{"unknown field in patch", "PATCH", "/api/v1/leads/" + l.ID, `{"version":9}`, patch(), 400},
		{"empty patch", "PATCH", "/api/v1/leads/" + l.ID, `{}`, patch(), 400},
		{"text/plain", "POST", "/api/v1/leads", `{"name":"x"}`, with(key(), "Content-Type", "text/plain"), 415},
		{"malformed If-Match", "PATCH", "/api/v1/leads/" + l.ID, `{"name":"x"}`, with(tok, "If-Match", "v1"), 400},
		{"malformed id", "GET", "/api/v1/leads/not-a-uuid", ``, tok, 404},
		{"bad limit", "GET", "/api/v1/leads?limit=0", ``, tok, 400},
		{"malformed query", "GET", "/api/v1/leads?cursor=%%%", ``, tok, 400},
		{"bad cursor", "GET", "/api/v1/leads?cursor=!!!", ``, tok, 400},
		{"forged cursor", "GET", "/api/v1/leads?cursor=eyJ0IjoxfQ", ``, tok, 400},
		{"bad time", "GET", "/api/v1/leads?created_after=yesterday", ``, tok, 400},
		{"unknown parameter", "GET", "/api/v1/leads?tenant=x", ``, tok, 400},
		{"malformed idempotency key", "POST", "/api/v1/leads", `{"name":"x"}`, with(tok, "Idempotency-Key", ""), 400},
		{"unknown route", "GET", "/api/v1/nothing", ``, tok, 404},
		{"debug route off by default", "GET", "/debug/slow", ``, nil, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantProblem(t, e.do(c.method, c.path, c.body, c.headers...), c.status)
		})
	}
}

func TestListPagesAndFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw := e.token(newTenant())
	tok := bearer(raw)
	ids := map[string]bool{}
	for i := range 7 {
		status, owner := "new", "sara"
		if i%2 == 1 {
			status, owner = "qualified", "omar"
		}
		l := e.createLead(raw, fmt.Sprintf(`{"name":"lead %d","status":%q,"owner":%q}`, i, status, owner))
		ids[l.ID] = true
	}

	type page struct {
		Items      []lead
		NextCursor string `json:"next_cursor"`
	}
	seen := map[string]bool{}
	next, pages := "", 0
	for {
		path := "/api/v1/leads?limit=3"
		if next != "" {
			path += "&cursor=" + next
		}
		var p page
		r := e.do("GET", path, "", tok...)
		wantStatus(t, r, http.StatusOK)
		r.json(t, &p)
		pages++
		for _, l := range p.Items {
			if seen[l.ID] {
				t.Fatalf("lead %s on two pages", l.ID)
			}
			seen[l.ID] = true
		}
		if next = p.NextCursor; next == "" {
			break
		}
	}
	if pages != 3 || len(seen) != len(ids) {
		t.Fatalf("%d pages, %d leads; want 3 pages, %d leads", pages, len(seen), len(ids))
	}

	var p page
	e.do("GET", "/api/v1/leads?status=qualified", "", tok...).json(t, &p)
	if len(p.Items) != 3 {
		t.Fatalf("status=qualified: %d leads, want 3", len(p.Items))
	}
	for _, l := range p.Items {
		if l.Status != "qualified" {
			t.Fatalf("status filter let %+v through", l)
		}
	}
	e.do("GET", "/api/v1/leads?owner=sara&status=new", "", tok...).json(t, &p)
	if len(p.Items) != 4 {
		t.Fatalf("owner=sara&status=new: %d leads, want 4", len(p.Items))
	}

	// The created range: every lead is after an hour ago and before an hour
	// from now; none is after an hour from now.
	hourAgo := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	hourOn := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	e.do("GET", "/api/v1/leads?created_after="+hourAgo+"&created_before="+hourOn, "", tok...).json(t, &p)
	if len(p.Items) != 7 {
		t.Fatalf("created in range: %d leads, want 7", len(p.Items))
	}
	// A cursor holding another spelling of a UUID is read, not a 500.
	urn := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"2999-01-01T00:00:00Z","id":"urn:uuid:` + uuid.NewString() + `"}`))
	r := e.do("GET", "/api/v1/leads?cursor="+urn, "", tok...)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &p)
	if len(p.Items) != 7 {
		t.Fatalf("cursor from the future: %d leads, want 7", len(p.Items))
	}
	e.do("GET", "/api/v1/leads?created_after="+hourOn, "", tok...).json(t, &p)
	if len(p.Items) != 0 {
		t.Fatalf("created after an hour from now: %d leads", len(p.Items))
	}
}

func TestPublicRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.do("GET", "/api/v1/pricing/plans", "")
	wantStatus(t, r, http.StatusOK)
	var plans struct{ Plans []struct{ ID string } }
	r.json(t, &plans)
	var got []string
	for _, p := range plans.Plans {
		got = append(got, p.ID)
	}
	if strings.Join(got, ",") != "starter,growth,scale" {
		t.Fatalf("plans %v, want starter, growth, scale (no pilot)", got)
	}
	if r.Header.Get("X-Correlation-ID") == "" {
		t.Fatal("a public route skipped telemetry: no X-Correlation-ID")
	}

	wantStatus(t, e.do("GET", "/health", ""), http.StatusOK)
	r = e.do("GET", "/health/deep", "")
	wantStatus(t, r, http.StatusOK)
	var rep struct {
		Status string
		Checks map[string]struct {
			Status string
			Data   map[string]any
		}
	}
	r.json(t, &rep)
	if rep.Status != "ok" || rep.Checks["postgres"].Status != "ok" || rep.Checks["migrations"].Status != "ok" || rep.Checks["pool"].Status != "ok" {
		t.Fatalf("deep health %s", r.body)
	}
	if _, ok := rep.Checks["postgres"].Data["latency_ms"]; !ok {
		t.Fatalf("no latency in %s", r.body)
	}
	if r.Header.Get("X-Correlation-ID") == "" {
		t.Fatal("health skipped telemetry")
	}
}

func TestDeepHealthIsDownWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.srv.Handler()
	if err := e.srv.Shutdown(context.Background()); err != nil { // closes the pools
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health/deep", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"postgres":{"status":"down"`) {
		t.Fatalf("deep health without a database: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/health", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("liveness without a database: %d", rec.Code)
	}
}

func TestDemoSeedIsIdempotentAndWorks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	demo := e.srv.Demo()
	if demo.TenantID != server.DemoTenantID || demo.JWT == "" || demo.APIKey == "" {
		t.Fatalf("demo %+v", demo)
	}
	var page struct{ Items []lead }
	r := e.do("GET", "/api/v1/leads", "", "X-API-Key", demo.APIKey)
	wantStatus(t, r, http.StatusOK)
	r.json(t, &page)
	if len(page.Items) != 3 {
		t.Fatalf("demo tenant has %d leads, want 3", len(page.Items))
	}
	wantStatus(t, e.do("GET", "/api/v1/api-keys", "", bearer(demo.JWT)...), http.StatusOK)

	// A second start on the same database: the same tenant and leads, a
	// new key, and the old key revoked.
	cfg := e.srv.Config()
	again, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Shutdown(context.Background())
	var tenants, leads, active int
	err = e.db.System.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM dealix.tenants WHERE tenant_id = $1),
		(SELECT count(*) FROM dealix.leads WHERE tenant_id = $1),
		(SELECT count(*) FROM platform.tenancy_api_keys WHERE tenant_id = $1 AND revoked_at IS NULL)`, server.DemoTenantID).Scan(&tenants, &leads, &active)
	if err != nil {
		t.Fatal(err)
	}
	if tenants != 1 || leads != 3 || active != 1 {
		t.Fatalf("after a second start: %d tenants, %d leads, %d active keys", tenants, leads, active)
	}
	// The second instance refuses the old key. (The first may accept it
	// until its cached entry expires: Config.APIKeyCacheTTL.)
	ts := httptest.NewServer(again.Handler())
	defer ts.Close()
	req, err := http.NewRequest("GET", ts.URL+"/api/v1/leads", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", demo.APIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old demo key on the second instance: status %d, want 401", res.StatusCode)
	}
}

func TestAppRolePassesTheRLSAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	findings, err := rlspolicy.Audit(context.Background(), e.db.App)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("RLS audit: %s", f)
	}
}
