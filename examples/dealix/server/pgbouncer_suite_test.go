package server_test

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/dealix/platform/internal/pgtest"
)

// envPgBouncer is the suite's switch: DEALIX_TEST_PGBOUNCER=1 puts Debian's
// pgbouncer, in transaction pooling mode, in front of the test server, and
// every server the tests start (newEnv, faultsServer, the child
// processes) then reaches PostgreSQL through it for its app and system
// pools. What must stay on one session goes direct: the owner's URL (the
// migrations hold a session advisory lock from the first to the last) and
// the queue workers' LISTEN (LISTEN_DATABASE_URL). Set without pgbouncer
// installed, the test binary fails at once.
const envPgBouncer = "DEALIX_TEST_PGBOUNCER"

// throughPgBouncer is the switch's value.
var throughPgBouncer = switchOn(os.Getenv(envPgBouncer))

func switchOn(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// checkPgBouncerSwitch is called by TestMain: with the switch set and no
// pgbouncer, the binary stops before any test runs, rather than passing
// without having gone through it.
func checkPgBouncerSwitch() {
	if !throughPgBouncer {
		return
	}
	if _, err := findPgBouncer(); err != nil {
		fmt.Fprintf(os.Stderr, "%s=%s: %v\n", envPgBouncer, os.Getenv(envPgBouncer), err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%s: the servers' app and system pools go through pgbouncer (transaction mode)\n", envPgBouncer)
}

// The binary's PgBouncer, in front of pgtest's shared server: started by
// the first test that asks, stopped by pgtest.Main with the server.
var sharedBouncer struct {
	once sync.Once
	b    *pgBouncer
	err  error
}

// bouncerFor returns a PgBouncer in front of db's server: the binary's
// shared one, or, for a database on a server of its own
// (pgtest.NewRestartable), one for the test.
func bouncerFor(t *testing.T, db *pgtest.DB) *pgBouncer {
	t.Helper()
	roles := []string{db.URL(pgtest.RoleOwner), db.URL(pgtest.RoleApp), db.URL(pgtest.RoleSystem)}
	if hostOf(db.URL(pgtest.RoleAdmin)) != hostOf(pgtest.AdminURL()) {
		return startPgBouncerForTest(t, db.URL(pgtest.RoleAdmin), roles...)
	}
	sharedBouncer.once.Do(func() {
		bin, err := findPgBouncer()
		if err != nil {
			sharedBouncer.err = err
			return
		}
		b, err := startPgBouncer(bin, pgtest.AdminURL(), roles...)
		if err != nil {
			sharedBouncer.err = err
			return
		}
		if err := pgtest.AtStop(b.stop); err != nil {
			b.stop()
			sharedBouncer.err = err
			return
		}
		sharedBouncer.b = b
	})
	if sharedBouncer.err != nil {
		if os.Getenv("CI") != "" || throughPgBouncer {
			t.Fatal(sharedBouncer.err)
		}
		t.Skip(sharedBouncer.err)
	}
	return sharedBouncer.b
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// serverURLs are the database URLs a test gives a server it starts.
type serverURLs struct {
	owner, app, system string
	// listen is LISTEN_DATABASE_URL: "" unless the system role's URL goes
	// through PgBouncer.
	listen string
}

// urlsFor returns db's URLs for a server: direct, or with the switch set,
// the app and system roles through PgBouncer and the LISTEN direct.
func urlsFor(t *testing.T, db *pgtest.DB) serverURLs {
	t.Helper()
	u := serverURLs{owner: db.URL(pgtest.RoleOwner), app: db.URL(pgtest.RoleApp), system: db.URL(pgtest.RoleSystem)}
	if !throughPgBouncer {
		return u
	}
	return pooledURLs(t, bouncerFor(t, db), db)
}

// pooledURLs are db's URLs with the app and system roles through b.
func pooledURLs(t *testing.T, b *pgBouncer, db *pgtest.DB) serverURLs {
	t.Helper()
	return serverURLs{
		owner:  db.URL(pgtest.RoleOwner),
		app:    b.pooledURL(t, db.URL(pgtest.RoleApp)),
		system: b.pooledURL(t, db.URL(pgtest.RoleSystem)),
		listen: db.URL(pgtest.RoleSystem),
	}
}

// The switch does what it says: without it a test server's URLs are the
// database's own; with it the app and system pools reach PostgreSQL
// through the binary's PgBouncer (its counters for the test's database
// grow with a request) while the owner and the LISTEN stay direct.
func TestSuiteSwitchRoutesTheServersPools(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.srv.Config()
	if !throughPgBouncer {
		if cfg.AppDatabaseURL != e.db.URL(pgtest.RoleApp) || cfg.SystemDatabaseURL != e.db.URL(pgtest.RoleSystem) || cfg.ListenDatabaseURL != "" {
			t.Fatalf("without %s the server was given other URLs", envPgBouncer)
		}
		return
	}
	b := bouncerFor(t, e.db)
	port := strconv.Itoa(b.port)
	for name, u := range map[string]string{"app": cfg.AppDatabaseURL, "system": cfg.SystemDatabaseURL} {
		if p, err := url.Parse(u); err != nil || p.Port() != port {
			t.Fatalf("the %s pool's URL does not name PgBouncer's port %s", name, port)
		}
	}
	for name, u := range map[string]string{"owner": cfg.DatabaseURL, "listen": cfg.ListenDatabaseURL} {
		if hostOf(u) != hostOf(pgtest.AdminURL()) {
			t.Fatalf("the %s URL is not direct", name)
		}
	}
	before := statInt(t, b.stats(t, e.db.Name), "total_xact_count")
	e.createLead(e.token(newTenant()), `{"name":"Through the pooler"}`)
	if after := statInt(t, b.stats(t, e.db.Name), "total_xact_count"); after <= before {
		t.Fatalf("PgBouncer counted no transaction for a request (%d, then %d)", before, after)
	}
}
