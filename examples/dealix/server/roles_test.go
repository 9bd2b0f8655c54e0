package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/examples/dealix/server"
	"github.com/dealix/platform/internal/pgtest"
)

// With only a superuser's DATABASE_URL, the server creates its app role
// (NOBYPASSRLS) and system role (BYPASSRLS) with generated passwords and
// serves through them.
func TestServerCreatesItsRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	suffix := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	appRole, sysRole := "dx_app_"+suffix, "dx_sys_"+suffix
	ctx := context.Background()
	t.Cleanup(func() { // after Shutdown below: the roles own nothing but grants here
		idents := pgx.Identifier{appRole}.Sanitize() + ", " + pgx.Identifier{sysRole}.Sanitize()
		if _, err := db.Admin.Exec(ctx, "DROP OWNED BY "+idents); err != nil {
			t.Errorf("drop owned: %v", err)
		}
		if _, err := db.Admin.Exec(ctx, "DROP ROLE "+idents); err != nil {
			t.Errorf("drop roles: %v", err)
		}
	})
	srv, err := server.New(ctx, server.Config{
		DatabaseURL: db.URL(pgtest.RoleAdmin),
		AppRole:     appRole, SystemRole: sysRole,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(ctx) })

	rows, err := db.Admin.Query(ctx, "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname IN ($1, $2) ORDER BY rolname", appRole, sysRole)
	if err != nil {
		t.Fatal(err)
	}
	type role struct {
		name                   string
		super, bypass, creates bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (role, error) {
		var x role
		return x, r.Scan(&x.name, &x.super, &x.bypass, &x.creates)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []role{{appRole, false, false, false}, {sysRole, false, true, false}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("roles %+v, want %+v", got, want)
	}

	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/leads", nil)
	req.Header.Set("X-API-Key", srv.Demo().APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET leads through the created app role: %d", resp.StatusCode)
	}
}

// An owner that may not create roles, without the roles' URLs, is a
// configuration error that names the variables to set.
func TestServerWithoutRolesIsAConfigError(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, err := server.New(context.Background(), server.Config{
		DatabaseURL: db.URL(pgtest.RoleOwner),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if !errors.Is(err, server.ErrInvalidConfig) || !strings.Contains(err.Error(), "APP_DATABASE_URL") {
		t.Fatalf("err %v", err)
	}
}
