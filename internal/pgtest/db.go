package pgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Role names one of the connections a DB hands out.
type Role int

const (
	// RoleAdmin is the server's superuser.
	RoleAdmin Role = iota
	// RoleOwner owns the schema and runs migrations.
	RoleOwner
	// RoleApp serves requests; row-level security binds it.
	RoleApp
	// RoleSystem runs background work across tenants (BYPASSRLS).
	RoleSystem
)

// DB is one test's own database, cloned from the migrated template, with a
// pool per role. Pools connect lazily and are closed, and the database
// dropped, when the test ends.
type DB struct {
	// Name is the database's name.
	Name string
	// Admin is connected as the server's superuser.
	Admin *pgxpool.Pool
	// Owner is connected as OwnerRole.
	Owner *pgxpool.Pool
	// App is connected as AppRole.
	App *pgxpool.Pool
	// System is connected as SystemRole.
	System *pgxpool.Pool

	adminURL string
}

// New creates a database for t, cloned from the migrated template; the
// first call starts the server. It fails t when Main was not called from
// TestMain or no server is available.
func New(t testing.TB) *DB {
	t.Helper()
	srv, err := shared("New")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return srv.newDB(t)
}

func (s *server) newDB(t testing.TB) *DB {
	t.Helper()
	db, err := s.create()
	if db != nil {
		t.Cleanup(func() { db.drop(s) })
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return db
}

// ForExample creates a database for a runnable Example, which has no
// testing.T: it is dropped when the test binary ends, and a failure
// panics (an Example cannot report one otherwise).
func ForExample() *DB {
	srv, err := shared("ForExample")
	if err != nil {
		panic(fmt.Sprintf("pgtest: %v", err))
	}
	db, err := srv.create()
	if db != nil {
		srv.atStop(func() { db.drop(srv) })
	}
	if err != nil {
		panic(fmt.Sprintf("pgtest: %v", err))
	}
	return db
}

// create clones the template into a new database with a pool per role. A
// non-nil DB is returned whenever the database was created, so the caller
// can drop it even when a pool failed.
func (s *server) create() (*DB, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := fmt.Sprintf("%s_%d", s.template, s.seq.Add(1))
	if err := s.cloneTemplate(ctx, name); err != nil {
		return nil, err
	}
	db := &DB{Name: name, adminURL: s.adminURL}
	for role, dst := range map[Role]**pgxpool.Pool{RoleAdmin: &db.Admin, RoleOwner: &db.Owner, RoleApp: &db.App, RoleSystem: &db.System} {
		pool, err := newPool(ctx, db.URL(role))
		if err != nil {
			return db, err
		}
		*dst = pool
	}
	return db, nil
}

// URL is the connection URL of this database as role, for code under test
// that opens its own pool or for a child process.
func (db *DB) URL(role Role) string {
	switch role {
	case RoleOwner:
		return roleURL(db.adminURL, OwnerRole, db.Name)
	case RoleApp:
		return roleURL(db.adminURL, AppRole, db.Name)
	case RoleSystem:
		return roleURL(db.adminURL, SystemRole, db.Name)
	default:
		return roleURL(db.adminURL, "", db.Name)
	}
}

func (s *server) cloneTemplate(ctx context.Context, name string) error {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() +
		" TEMPLATE " + pgx.Identifier{s.template}.Sanitize() +
		" OWNER " + pgx.Identifier{OwnerRole}.Sanitize()
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create test database %s: %w", name, err)
	}
	return nil
}

func (db *DB) drop(srv *server) {
	for _, pool := range []*pgxpool.Pool{db.Admin, db.Owner, db.App, db.System} {
		if pool != nil {
			pool.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = srv.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db.Name}.Sanitize()+" WITH (FORCE)")
}
