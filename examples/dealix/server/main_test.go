package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

func TestMain(m *testing.M) {
	var fns []pgtest.MigrateFunc
	for _, fn := range server.Migrations() {
		fns = append(fns, fn)
	}
	checkPgBouncerSwitch()
	pgtest.Main(m, pgtest.WithMigrations(fns...))
}

// allowedOrigin is the one browser origin the test servers allow.
const allowedOrigin = "https://app.example.com"

// env is a server over its own database, served by httptest.
type env struct {
	t   *testing.T
	db  *pgtest.DB
	srv *server.Server
	url string
	key []byte
}

func newEnv(t *testing.T, mutate ...func(*server.Config)) *env {
	t.Helper()
	db := pgtest.New(t)
	return newEnvOn(t, db, urlsFor(t, db), mutate...)
}

// newEnvOn is newEnv on db, the server given urls.
func newEnvOn(t *testing.T, db *pgtest.DB, urls serverURLs, mutate ...func(*server.Config)) *env {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cfg := server.Config{
		DatabaseURL:       urls.owner,
		AppDatabaseURL:    urls.app,
		SystemDatabaseURL: urls.system,
		ListenDatabaseURL: urls.listen,
		JWTHMACKey:        key,
		CORSOrigins:       []string{allowedOrigin},
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, db: db, srv: srv, url: ts.URL, key: key}
}

// token signs a JWT for tenant with the server's key.
func (e *env) token(tenant string, scopes ...string) string {
	e.t.Helper()
	return signToken(e.t, e.key, jwt.MapClaims{
		"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": "user-" + tenant[:8],
		"tenant_id": tenant, "scopes": scopes,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
}

func signToken(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = server.DevKeyID
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// response is a finished response with its body read.
type response struct {
	*http.Response
	body []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request. headers alternate name, value; a "Bearer …" or
// "dlx_…" credential goes in Authorization.
func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
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

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func with(h []string, more ...string) []string { return append(append([]string{}, h...), more...) }

// wantProblem checks a problem+json answer with status.
func wantProblem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", r.StatusCode, status, r.body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (body %s)", ct, r.body)
	}
	var p map[string]any
	r.json(t, &p)
	if int(p["status"].(float64)) != status {
		t.Fatalf("problem status %v, want %d", p["status"], status)
	}
	return p
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
}

type lead struct {
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Status  string  `json:"status"`
	Owner   *string `json:"owner"`
	Version int     `json:"version"`
}

// createLead creates a lead as token and returns it.
func (e *env) createLead(token, body string) lead {
	e.t.Helper()
	r := e.do("POST", "/api/v1/leads", body, with(bearer(token), "Idempotency-Key", uuid.NewString())...)
	wantStatus(e.t, r, http.StatusCreated)
	var l lead
	r.json(e.t, &l)
	return l
}

func newTenant() string { return uuid.NewString() }

func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
