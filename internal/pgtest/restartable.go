package pgtest

import (
	"context"
	"errors"
	"testing"

	"github.com/dealix/platform/internal/pgboot"
)

// NewRestartable starts a PostgreSQL server of its own for t, prepared like
// the shared one (roles, migrated template), and returns a database on it
// together with a function that stops and starts that server. The server's
// port is fixed, so pools and clients given db.URL(…) can reconnect after a
// restart: this is for tests of how code survives a database restart. The
// server is removed when t ends.
//
// The server is a container when a Docker engine is reachable, else a
// local cluster from PostgreSQL's binaries; EnvDatabaseURL is not used, as
// the tests must not restart a server they were lent. When neither Docker
// nor the binaries are there and EnvDatabaseURL names a server, t is
// skipped with that reason; without EnvDatabaseURL it fails.
func NewRestartable(t testing.TB) (db *DB, restart func(ctx context.Context) error) {
	t.Helper()
	cfg := mainCfg.Load()
	if cfg == nil {
		t.Fatal("pgtest: call pgtest.Main from TestMain before pgtest.NewRestartable")
	}
	port, err := pgboot.FreePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	opts := envNames.Options()
	opts.URL = ""
	opts.Port = port
	srv, err := start(context.Background(), *cfg, opts)
	if err != nil {
		if errors.Is(err, pgboot.ErrNoServer) && envNames.Options().URL != "" {
			t.Skipf("pgtest: restarting a server needs a Docker engine or PostgreSQL's binaries; %s names a server the tests must not restart (%v)", EnvDatabaseURL, err)
		}
		t.Fatalf("pgtest: restartable server: %v", err)
	}
	t.Cleanup(srv.stop)

	db = srv.newDB(t)
	return db, srv.boot.Restart
}
