package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgboot"
)

const (
	// EnvDatabaseURL names an existing server to use instead of starting
	// one: a postgres:// URL of a superuser (roles and databases are
	// created on it).
	EnvDatabaseURL = "DEALIX_TEST_DATABASE_URL"
	// EnvImage names the PostgreSQL image a container is started from.
	EnvImage = "DEALIX_TEST_POSTGRES_IMAGE"
	// DefaultImage is the image used when EnvImage is empty.
	DefaultImage = pgboot.DefaultImage
	// EnvPullImage, set to "true", lets the helper pull a missing image
	// from its registry. Without it a missing image is an error that says
	// how to get one, so a test run never reaches out to a registry by
	// surprise.
	EnvPullImage = "DEALIX_TEST_PULL_IMAGE"
	// EnvBinDir, when set, is the only directory searched for PostgreSQL's
	// binaries (initdb, postgres) when neither a URL nor Docker serves.
	EnvBinDir = "DEALIX_TEST_POSTGRES_BIN"
	// StartTimeout bounds how long the first database request waits for a
	// server to be ready.
	StartTimeout = 2 * time.Minute
	// envParent carries a test binary's template name to the processes it
	// starts, which name their databases under it: the parent drops them
	// when it stops, so a child killed before its own clean-up leaves
	// nothing behind on a shared server.
	envParent = "DEALIX_PGTEST_PARENT"
)

// envNames are the variables the helper reads pgboot's options from.
var envNames = pgboot.EnvNames{URL: EnvDatabaseURL, Image: EnvImage, Pull: EnvPullImage, BinDir: EnvBinDir}

// serverSettings trade durability for speed and allow many connections:
// every test opens pools for four roles.
var serverSettings = map[string]string{
	"max_connections":    "500",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"fsync":              "off",
}

// The three roles of the library's design. They are created on the server
// (roles are cluster-wide) with fixed, test-only passwords.
const (
	OwnerRole  = "dealix_owner"  // owns the schema, runs migrations
	AppRole    = "dealix_app"    // serves requests: NOSUPERUSER, NOBYPASSRLS, owns nothing
	SystemRole = "dealix_system" // background work across tenants: BYPASSRLS
)

// MigrateFunc migrates a database; every package's Migrate has this shape.
type MigrateFunc func(ctx context.Context, pool *pgxpool.Pool) error

// Option configures Main.
type Option func(*config)

type config struct {
	migrations []MigrateFunc
}

// WithMigrations runs fns, in order and as the owner role, on the template
// every test database is cloned from.
func WithMigrations(fns ...MigrateFunc) Option {
	return func(c *config) { c.migrations = append(c.migrations, fns...) }
}

// server is a PostgreSQL server prepared for tests: roles and a migrated
// template.
type server struct {
	cfg       config
	boot      *pgboot.Server
	adminURL  string
	admin     *pgxpool.Pool
	template  string
	seq       atomic.Int64
	createMu  sync.Mutex // CREATE DATABASE … TEMPLATE one at a time per template
	cleanupMu sync.Mutex
	cleanups  []func() // databases of Examples, dropped at stop
}

// The shared server of one test binary, started by the first database
// request, so tests, fuzz workers and Examples that need no database run
// without one.
var (
	mainCfg   atomic.Pointer[config]
	startOnce sync.Once
	current   atomic.Pointer[server]
	startErr  error
)

// Main runs the tests and then stops the server if one was started and
// drops what the tests left. Call it from TestMain; it does not return.
//
// The server is started by the first call of New, ForExample or AdminURL;
// when none is available, that call fails its test with one message naming
// the three ways to get one.
func Main(m *testing.M, opts ...Option) {
	os.Exit(run(m, opts...))
}

func run(m *testing.M, opts ...Option) int {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	mainCfg.Store(&cfg)
	code := m.Run()
	if srv := current.Load(); srv != nil {
		srv.stop()
	}
	return code
}

// shared returns the binary's server, starting it on first use.
func shared(caller string) (*server, error) {
	cfg := mainCfg.Load()
	if cfg == nil {
		return nil, fmt.Errorf("call pgtest.Main from TestMain before pgtest.%s", caller)
	}
	startOnce.Do(func() {
		srv, err := start(context.Background(), *cfg, envNames.Options())
		if err != nil {
			startErr = err
			return
		}
		current.Store(srv)
		// Processes started from here on name their databases under this
		// template, so stop drops them even when they were killed.
		_ = os.Setenv(envParent, srv.template)
	})
	if startErr != nil {
		return nil, startErr
	}
	return current.Load(), nil
}

// ContainerID is the id of the container the server runs in, or "" when
// the server came from EnvDatabaseURL or local binaries, or has not been
// started.
func ContainerID() string {
	if srv := current.Load(); srv != nil {
		return srv.boot.ContainerID
	}
	return ""
}

// Source says where the server came from ("" before it started).
func Source() pgboot.Source {
	if srv := current.Load(); srv != nil {
		return srv.boot.Source
	}
	return ""
}

// AdminURL is the superuser URL of the server in use, starting it if
// needed; "" when none could be started (New reports why).
func AdminURL() string {
	srv, err := shared("AdminURL")
	if err != nil {
		return ""
	}
	return srv.adminURL
}

// start gets a server from pgboot (for the shared server: the
// environment's URL, else Docker, else local binaries) and prepares it.
func start(ctx context.Context, cfg config, opts pgboot.Options) (*server, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	opts.Settings = serverSettings
	opts.ContainerLabels = map[string]string{"dealix.pgtest": "true"}
	boot, err := pgboot.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	srv := &server{cfg: cfg, boot: boot, adminURL: boot.AdminURL}
	if err := srv.prepare(ctx); err != nil {
		srv.stop()
		return nil, err
	}
	return srv, nil
}

func (s *server) prepare(ctx context.Context) (err error) {
	if s.admin, err = newPool(ctx, s.adminURL); err != nil {
		return err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.admin.Ping(pingCtx); err != nil {
		return fmt.Errorf("cannot reach the PostgreSQL server at %s: %w", pgboot.Redact(s.adminURL), err)
	}
	if err := ensureRoles(ctx, s.admin); err != nil {
		return err
	}
	return s.createTemplate(ctx)
}

// atStop registers fn to run when the server stops, before the template
// is dropped.
func (s *server) atStop(fn func()) {
	s.cleanupMu.Lock()
	defer s.cleanupMu.Unlock()
	s.cleanups = append(s.cleanups, fn)
}

func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.cleanupMu.Lock()
	cleanups := s.cleanups
	s.cleanups = nil
	s.cleanupMu.Unlock()
	for _, fn := range cleanups {
		fn()
	}
	if s.admin != nil {
		if s.template != "" {
			s.dropOwned(ctx)
		}
		s.admin.Close()
	}
	if s.boot != nil {
		_ = s.boot.Close(ctx)
	}
}

// dropOwned drops the template and every database named under it: this
// binary's own that are left, and those of the processes it started.
func (s *server) dropOwned(ctx context.Context) {
	rows, err := s.admin.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", s.template+"_")
	var names []string
	if err == nil {
		names, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	for _, name := range append(names, s.template) {
		_, _ = s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
}

// ensureRoles creates the three roles, or resets their attributes when they
// exist. Test binaries sharing one server serialise on an advisory lock.
func ensureRoles(ctx context.Context, admin *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('dealix pgtest roles'))"); err != nil {
			return err
		}
		attrs := map[string]string{
			OwnerRole:  "NOBYPASSRLS",
			AppRole:    "NOBYPASSRLS",
			SystemRole: "BYPASSRLS",
		}
		for role, bypass := range attrs {
			ident := pgx.Identifier{role}.Sanitize()
			var exists bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				if _, err := tx.Exec(ctx, "CREATE ROLE "+ident); err != nil {
					return fmt.Errorf("create role %s: %w", role, err)
				}
			}
			sql := fmt.Sprintf("ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE %s PASSWORD '%s'", ident, bypass, password(role))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("alter role %s: %w", role, err)
			}
		}
		return nil
	})
}

// createTemplate makes the migrated database every test database is cloned
// from. Its name is random so binaries sharing a server do not collide.
func (s *server) createTemplate(ctx context.Context) error {
	s.template = templateName()
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.template}.Sanitize()+" OWNER "+pgx.Identifier{OwnerRole}.Sanitize()); err != nil {
		s.template = ""
		return fmt.Errorf("create template database: %w", err)
	}
	owner, err := newPool(ctx, roleURL(s.adminURL, OwnerRole, s.template))
	if err != nil {
		return err
	}
	defer owner.Close()
	for i, fn := range s.cfg.migrations {
		if err := fn(ctx, owner); err != nil {
			return fmt.Errorf("migration function %d on the template: %w", i+1, err)
		}
	}
	var hasSchema bool
	if err := owner.QueryRow(ctx, "SELECT to_regnamespace($1) IS NOT NULL", migrate.DefaultSchema).Scan(&hasSchema); err != nil {
		return err
	}
	if hasSchema {
		if err := migrate.Grant(ctx, owner, migrate.DefaultSchema, AppRole, SystemRole); err != nil {
			return err
		}
	}
	return nil
}

// templateName is a random name, under the parent's template when this
// binary was started by another that uses pgtest.
func templateName() string {
	own := randomHex(5)
	parent := os.Getenv(envParent)
	// PostgreSQL truncates names at 63 bytes: nest only while the clones'
	// names fit.
	if parent != "" && len(parent) <= 40 && strings.Trim(parent, "abcdefghijklmnopqrstuvwxyz0123456789_") == "" {
		return parent + "_c" + own
	}
	return "pgtest_" + own
}

func newPool(ctx context.Context, connURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL %s: %w", pgboot.Redact(connURL), err)
	}
	cfg.MaxConns = 32
	cfg.MinConns = 0
	return pgxpool.NewWithConfig(ctx, cfg)
}

// roleURL is adminURL with another user and database.
func roleURL(adminURL, role, database string) string {
	u, err := url.Parse(adminURL)
	if err != nil {
		return adminURL
	}
	if role != "" {
		u.User = url.UserPassword(role, password(role))
	}
	u.Path = "/" + database
	return u.String()
}

func password(role string) string { return role + "_test_password" }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("pgtest: no randomness: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

// AtStop registers fn to run when Main stops the binary's shared server,
// before the databases left are dropped: for a helper process put in front
// of the server (a connection pooler) that must stop with it. It starts the
// server if needed and returns an error when none is available.
func AtStop(fn func()) error {
	srv, err := shared("AtStop")
	if err != nil {
		return err
	}
	srv.atStop(fn)
	return nil
}
