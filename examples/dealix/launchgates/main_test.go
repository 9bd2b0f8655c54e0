package launchgates_test

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/dealix/platform/examples/dealix/launchgates"
	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/telemetry"
)

func TestMain(m *testing.M) {
	// As the server's own Run does: W3C trace context is read from
	// requests, so a traceparent's trace id becomes the correlation id.
	// No exporter is configured, so there is nothing to flush at the end.
	telemetry.Init(context.Background(), telemetry.Config{ServiceName: "dealix-launchgates-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	var fns []pgtest.MigrateFunc
	for _, fn := range server.Migrations() {
		fns = append(fns, fn)
	}
	pgtest.Main(m, pgtest.WithMigrations(fns...))
}

// allowedOrigin is the one browser origin the test servers allow.
const allowedOrigin = "https://app.example.com"

// env is a reference server over its own database, served by httptest,
// and the launch configuration that reaches it.
type env struct {
	db     *pgtest.DB
	srv    *server.Server
	tenant string
	cfg    launchgates.Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.New(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := server.New(ctx, server.Config{
		DatabaseURL:       db.URL(pgtest.RoleOwner),
		AppDatabaseURL:    db.URL(pgtest.RoleApp),
		SystemDatabaseURL: db.URL(pgtest.RoleSystem),
		JWTHMACKey:        key,
		CORSOrigins:       []string{allowedOrigin},
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
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
	tenant := uuid.NewString()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return &env{db: db, srv: srv, tenant: tenant, cfg: launchgates.Config{
		BaseURL:        ts.URL,
		AdminToken:     sign(t, key, "admin-"+tenant[:8], tenant, "admin", "leads"),
		UserToken:      sign(t, key, "user-"+tenant[:8], tenant, "leads"),
		AllowedOrigin:  allowedOrigin,
		DatabaseURL:    db.URL(pgtest.RoleAdmin),
		AppDatabaseURL: db.URL(pgtest.RoleApp),
		Root:           root,
		Client:         ts.Client(),
	}}
}

func sign(t *testing.T, key []byte, subject, tenant string, scopes ...string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": server.DefaultJWTIssuer, "aud": server.DefaultJWTAudience, "sub": subject,
		"tenant_id": tenant, "scopes": scopes,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = server.DevKeyID
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
