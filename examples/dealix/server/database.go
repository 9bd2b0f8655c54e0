package server

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/examples/dealix/billing"
	"github.com/dealix/platform/examples/dealix/deals"
	"github.com/dealix/platform/examples/dealix/intake"
	"github.com/dealix/platform/examples/dealix/leads"
	"github.com/dealix/platform/examples/dealix/outbound"
	"github.com/dealix/platform/examples/dealix/pricing"
	"github.com/dealix/platform/examples/dealix/scoring"
	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
	"github.com/dealix/platform/webhooksig"
)

// Schema holds the server's own tables (tenants, leads, plans), apart from
// the library's schema, migrate.DefaultSchema ("platform").
const Schema = "dealix"

//go:embed migrations/*.sql
var migrationFS embed.FS

// MigrateFunc migrates a database as its owner; every package's Migrate has
// this shape.
type MigrateFunc = func(ctx context.Context, pool *pgxpool.Pool) error

// Migrations lists, in order, every migration the server applies at start:
// each library package's, then the server's own. Tests give the same list
// to pgtest.WithMigrations.
func Migrations() []MigrateFunc {
	return []MigrateFunc{
		tenancy.Migrate,
		idempotency.Migrate,
		durable.Migrate,
		dlq.Migrate,
		approvals.Migrate,
		webhooksig.Migrate,
		pricing.Migrate,
		Migrate,
		leads.Migrate,
		scoring.Migrate,
		outbound.Migrate,
		billing.Migrate,
		intake.Migrate,
		deals.Migrate,
	}
}

// Migrate creates the server's tenants table and applies its policy. Run
// it as the owner, after pricing.Migrate (a tenant's plan refers to it).
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := migrate.Apply(ctx, pool, migrate.Source{Package: "dealix", FS: migrationFS, Schema: Schema}); err != nil {
		return err
	}
	return rlspolicy.Apply(ctx, pool, Schema+".tenants")
}

// databases are the server's three pools, one per role of the design.
type databases struct {
	owner  *pgxpool.Pool // runs migrations and grants; closed after start-up
	app    *pgxpool.Pool // serves requests; row-level security binds it
	system *pgxpool.Pool // background work across tenants (BYPASSRLS)
	// migrated maps each package to the newest migration applied at start.
	migrated map[string]int
}

func (d *databases) close() {
	for _, p := range []*pgxpool.Pool{d.owner, d.app, d.system} {
		if p != nil {
			p.Close()
		}
	}
}

// openDatabases migrates the database as the owner, makes sure the app and
// system roles exist (creating them when no URL names them), grants them
// the schemas and opens their pools.
func openDatabases(ctx context.Context, cfg Config, adminURL string, log *slog.Logger) (_ *databases, err error) {
	d := &databases{}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	ownerCfg, err := pgxpool.ParseConfig(adminURL)
	if err != nil {
		return nil, fmt.Errorf("%w: DATABASE_URL: %s", ErrInvalidConfig, redactErr(err))
	}
	ownerCfg.MaxConns = 4
	if d.owner, err = connect(ctx, ownerCfg, "DATABASE_URL"); err != nil {
		return nil, err
	}
	for _, m := range Migrations() {
		if err := m(ctx, d.owner); err != nil {
			if isPermissionDenied(err) {
				return nil, fmt.Errorf("%w: DATABASE_URL: the role %q may not create or change the schemas (%v); "+
					"use the database's owner or a superuser", ErrInvalidConfig, ownerCfg.ConnConfig.User, err)
			}
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}

	appCfg, sysCfg, err := serviceConfigs(ctx, cfg, d.owner, ownerCfg, log)
	if err != nil {
		return nil, err
	}
	if cfg.QueryTracer != nil {
		appCfg.ConnConfig.Tracer = cfg.QueryTracer
		sysCfg.ConnConfig.Tracer = cfg.QueryTracer
	}
	appCfg.MaxConns = int32(cfg.AppPoolSize)
	sysCfg.MaxConns = 12 // queue fetches and completions, durable claims and leases, sweepers
	if d.app, err = connect(ctx, appCfg, "APP_DATABASE_URL"); err != nil {
		return nil, err
	}
	if d.system, err = connect(ctx, sysCfg, "SYSTEM_DATABASE_URL"); err != nil {
		return nil, err
	}
	appRole, err := checkRole(ctx, d.app, false)
	if err != nil {
		return nil, fmt.Errorf("%w: APP_DATABASE_URL: %w", ErrInvalidConfig, err)
	}
	systemRole, err := checkRole(ctx, d.system, true)
	if err != nil {
		return nil, fmt.Errorf("%w: SYSTEM_DATABASE_URL: %w", ErrInvalidConfig, err)
	}
	for _, schema := range []string{migrate.DefaultSchema, Schema} {
		if err := migrate.Grant(ctx, d.owner, schema, appRole, systemRole); err != nil {
			return nil, err
		}
	}
	if d.migrated, err = migratedVersions(ctx, d.owner); err != nil {
		return nil, err
	}
	return d, nil
}

// ApplicationName is the application_name of the server's connections,
// unless their URL sets one: pg_stat_activity then tells them from other
// clients' (an operator's psql, a second service on the same database).
const ApplicationName = "dealix"

func connect(ctx context.Context, cfg *pgxpool.Config, name string) (*pgxpool.Pool, error) {
	nameConnections(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach PostgreSQL as %q on %s (%s): %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, name, err)
	}
	return pool, nil
}

// serviceConfigs returns the pool configurations of the app and system
// roles: from their URLs, or, for a URL not given, a role created (or
// updated) here with a fresh generated password, on the owner's server.
func serviceConfigs(ctx context.Context, cfg Config, owner *pgxpool.Pool, ownerCfg *pgxpool.Config, log *slog.Logger) (app, system *pgxpool.Config, err error) {
	type want struct {
		url, role, env string
		bypass         bool
		dst            **pgxpool.Config
	}
	for _, w := range []want{
		{cfg.AppDatabaseURL, cfg.AppRole, "APP_DATABASE_URL", false, &app},
		{cfg.SystemDatabaseURL, cfg.SystemRole, "SYSTEM_DATABASE_URL", true, &system},
	} {
		if w.url != "" {
			if *w.dst, err = pgxpool.ParseConfig(w.url); err != nil {
				return nil, nil, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, w.env, redactErr(err))
			}
			continue
		}
		password, err := ensureRole(ctx, owner, w.role, w.bypass)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s is not set and the role %q could not be created or updated as %q (%v); "+
				"give DATABASE_URL a superuser, or create the role yourself and set %s",
				ErrInvalidConfig, w.env, w.role, ownerCfg.ConnConfig.User, err, w.env)
		}
		log.Info("database: role ready with a generated password", "role", w.role, "bypassrls", w.bypass)
		c := ownerCfg.Copy()
		c.ConnConfig.User = w.role
		c.ConnConfig.Password = password
		*w.dst = c
	}
	return app, system, nil
}

// ensureRole creates role, or resets its attributes, with a new password:
// LOGIN, no superuser, no role or database creation, and BYPASSRLS only
// for the system role. Instances starting together serialise on an
// advisory lock.
func ensureRole(ctx context.Context, owner *pgxpool.Pool, role string, bypass bool) (string, error) {
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	// Hex only, so the literal needs no quoting beyond the quotes.
	password := hex.EncodeToString(secret)
	attrs := "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
	if bypass {
		attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS"
	}
	ident := pgx.Identifier{role}.Sanitize()
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('dealix server roles'))"); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
			return err
		}
		verb := "ALTER"
		if !exists {
			verb = "CREATE"
		}
		_, err := tx.Exec(ctx, verb+" ROLE "+ident+" "+attrs+" PASSWORD '"+password+"'")
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return "", errors.New(pgErr.Message)
	}
	return password, err
}

// checkRole returns the pool's role and refuses an app role that escapes
// row-level security (a superuser or BYPASSRLS): the whole design of
// tenant isolation rests on it. A system role without BYPASSRLS only
// gets a refusal too: its sweeps would see no row.
func checkRole(ctx context.Context, pool *pgxpool.Pool, wantBypass bool) (string, error) {
	var role string
	var super, bypass bool
	if err := pool.QueryRow(ctx, "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user").Scan(&role, &super, &bypass); err != nil {
		return "", err
	}
	switch {
	case !wantBypass && (super || bypass):
		return "", fmt.Errorf("role %q is a superuser or has BYPASSRLS; the serving role must be bound by row-level security", role)
	case wantBypass && !super && !bypass:
		return "", fmt.Errorf("role %q lacks BYPASSRLS; background work across tenants needs it", role)
	}
	return role, nil
}

// migratedVersions reads the newest applied migration of each package.
func migratedVersions(ctx context.Context, pool *pgxpool.Pool) (map[string]int, error) {
	rows, err := pool.Query(ctx, `SELECT package, max(version) FROM platform.schema_migrations GROUP BY package
		UNION ALL SELECT package, max(version) FROM dealix.schema_migrations GROUP BY package`)
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	out := map[string]int{}
	var pkg string
	var v int
	_, err = pgx.ForEachRow(rows, []any{&pkg, &v}, func() error {
		out[pkg] = max(out[pkg], v)
		return nil
	})
	return out, err
}

// isPermissionDenied reports PostgreSQL's insufficient_privilege.
func isPermissionDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501"
}

// listenConfig is the dlq workers' LISTEN connection configuration: nil
// (the system pool's own) unless LISTEN_DATABASE_URL names a direct one.
func listenConfig(cfg Config) (*pgx.ConnConfig, error) {
	if cfg.ListenDatabaseURL == "" {
		return nil, nil
	}
	cc, err := pgx.ParseConfig(cfg.ListenDatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: LISTEN_DATABASE_URL: %s", ErrInvalidConfig, redactErr(err))
	}
	nameConnections(cc)
	return cc, nil
}

// nameConnections sets ApplicationName on cc unless its URL named one.
func nameConnections(cc *pgx.ConnConfig) {
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = ApplicationName
	}
}
