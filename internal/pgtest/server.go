package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/dealix/platform/internal/migrate"
)

const (
	// EnvDatabaseURL names an existing server to use instead of a
	// container: a postgres:// URL of a superuser (roles and databases
	// are created on it).
	EnvDatabaseURL = "DEALIX_TEST_DATABASE_URL"
	// EnvImage names the PostgreSQL image the container is started from.
	EnvImage = "DEALIX_TEST_POSTGRES_IMAGE"
	// DefaultImage is the image used when EnvImage is empty.
	DefaultImage = "postgres:16-alpine"
	// EnvPullImage, set to "true", lets the helper pull a missing image
	// from its registry. Without it a missing image is an error that says
	// how to get one, so a test run never reaches out to a registry by
	// surprise.
	EnvPullImage = "DEALIX_TEST_PULL_IMAGE"
	// StartTimeout bounds how long Main waits for a container to be ready.
	StartTimeout = 2 * time.Minute
)

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

// server is the PostgreSQL server of one test binary.
type server struct {
	cfg         config
	adminURL    string
	containerID string
	container   *postgres.PostgresContainer
	admin       *pgxpool.Pool
	template    string
	seq         atomic.Int64
	createMu    sync.Mutex // CREATE DATABASE … TEMPLATE one at a time per template
	cleanupMu   sync.Mutex
	cleanups    []func() // databases of Examples, dropped at stop
}

var current *server

// Main starts (or connects to) the server, prepares the roles and the
// migrated template, runs the tests and cleans up. Call it from TestMain; it
// does not return.
func Main(m *testing.M, opts ...Option) {
	os.Exit(run(m, opts...))
}

func run(m *testing.M, opts ...Option) int {
	var cfg config
	for _, opt := range opts {
		opt(&cfg)
	}
	srv, err := start(context.Background(), cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	current = srv
	defer srv.stop()
	return m.Run()
}

// ContainerID is the id of the container the server runs in, or "" when
// the server came from EnvDatabaseURL.
func ContainerID() string {
	if current == nil {
		return ""
	}
	return current.containerID
}

// AdminURL is the superuser URL of the server in use.
func AdminURL() string {
	if current == nil {
		return ""
	}
	return current.adminURL
}

func start(ctx context.Context, cfg config) (*server, error) {
	srv := &server{cfg: cfg, adminURL: os.Getenv(EnvDatabaseURL)}
	if err := srv.prepare(ctx); err != nil {
		srv.stop()
		return nil, err
	}
	return srv, nil
}

func (s *server) prepare(ctx context.Context, extra ...testcontainers.ContainerCustomizer) (err error) {
	if s.adminURL == "" {
		if err := s.startContainer(ctx, extra...); err != nil {
			return fmt.Errorf("no PostgreSQL server for the tests: set %s to the URL of an existing server, or make a Docker engine reachable (%w)", EnvDatabaseURL, err)
		}
	}
	if s.admin, err = newPool(ctx, s.adminURL); err != nil {
		return err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.admin.Ping(pingCtx); err != nil {
		return fmt.Errorf("cannot reach the PostgreSQL server at %s: %w", redact(s.adminURL), err)
	}
	if err := ensureRoles(ctx, s.admin); err != nil {
		return err
	}
	return s.createTemplate(ctx)
}

func (s *server) startContainer(ctx context.Context, extra ...testcontainers.ContainerCustomizer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	// testcontainers panics in some set-ups without a Docker engine; that
	// is the same answer as an error here: no server.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("starting a container panicked: %v", r)
		}
	}()
	tclog.SetDefault(tclog.NewNoopLogger())
	if err := checkDockerHost(ctx); err != nil {
		return err
	}
	image := os.Getenv(EnvImage)
	if image == "" {
		image = DefaultImage
	}
	if err := checkImagePresent(ctx, image); err != nil {
		return err
	}
	opts := []testcontainers.ContainerCustomizer{
		postgres.WithUsername("postgres"),
		postgres.WithPassword("postgres"),
		postgres.WithDatabase("postgres"),
		postgres.BasicWaitStrategies(),
		testcontainers.WithLabels(map[string]string{"dealix.pgtest": "true"}),
		// Test servers trade durability for speed and allow many
		// connections: every test opens pools for three roles.
		testcontainers.WithCmdArgs("-c", "max_connections=500", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
	}
	container, err := postgres.Run(ctx, image, append(opts, extra...)...)
	if container != nil {
		s.container = container
		s.containerID = container.GetContainerID()
	}
	if err != nil {
		return fmt.Errorf("image %s: %w", image, err)
	}
	s.adminURL, err = container.ConnectionString(ctx, "sslmode=disable")
	return err
}

// checkDockerHost makes an explicit DOCKER_HOST authoritative: when it is
// set and nothing answers there, the helper stops with that error instead of
// letting discovery fall back to another engine the user did not choose.
func checkDockerHost(ctx context.Context) error {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		return nil
	}
	u, err := url.Parse(host)
	if err != nil {
		return fmt.Errorf("DOCKER_HOST %q: %w", host, err)
	}
	network, address := "tcp", u.Host
	if u.Scheme == "unix" {
		network, address = "unix", u.Path
	}
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dialCtx, network, address)
	if err != nil {
		return fmt.Errorf("DOCKER_HOST %s does not answer: %w", host, err)
	}
	return conn.Close()
}

// checkImagePresent refuses to go on with an image the engine does not
// have, unless pulling was allowed with EnvPullImage.
func checkImagePresent(ctx context.Context, image string) error {
	if strings.EqualFold(os.Getenv(EnvPullImage), "true") {
		return nil
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		return fmt.Errorf("image %s is not on this Docker engine (%v): pull it with 'docker pull %s', set %s=true to let the tests pull it, "+
			"or build a local one with scripts/build-postgres-image.sh and name it in %s", image, err, image, EnvPullImage, EnvImage)
	}
	return nil
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
			_, _ = s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.template}.Sanitize()+" WITH (FORCE)")
		}
		s.admin.Close()
	}
	if s.container != nil {
		_ = testcontainers.TerminateContainer(s.container, testcontainers.StopContext(ctx))
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
	s.template = "pgtest_" + randomHex(5)
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

func newPool(ctx context.Context, connURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		return nil, fmt.Errorf("parse database URL %s: %w", redact(connURL), err)
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

func redact(connURL string) string {
	u, err := url.Parse(connURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("pgtest: no randomness: " + err.Error()))
	}
	return hex.EncodeToString(b)
}
