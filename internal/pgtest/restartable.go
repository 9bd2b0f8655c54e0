package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
)

// NewRestartable starts a PostgreSQL container of its own for t, prepared
// like the shared one (roles, migrated template), and returns a database on
// it together with a function that stops and starts that server. The
// container's port is fixed on the host, so pools and clients given
// db.URL(…) can reconnect after a restart: this is for tests of how code
// survives a database restart. The container is removed when t ends.
//
// It needs a Docker engine; with EnvDatabaseURL set (no container to
// restart) t is skipped with that reason.
func NewRestartable(t testing.TB) (db *DB, restart func(ctx context.Context) error) {
	t.Helper()
	if current == nil {
		t.Fatal("pgtest: call pgtest.Main from TestMain before pgtest.NewRestartable")
	}
	if current.containerID == "" {
		t.Skip("pgtest: restarting a server needs a Docker engine; " + EnvDatabaseURL + " names a server the tests must not restart")
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()

	port, err := freeLoopbackPort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	srv := &server{cfg: current.cfg}
	fixedPort := testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
		hc.PortBindings = network.PortMap{
			network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(port)}},
		}
	})
	if err := srv.prepare(ctx, fixedPort); err != nil {
		srv.stop()
		t.Fatalf("pgtest: restartable server: %v", err)
	}
	t.Cleanup(srv.stop)

	db = srv.newDB(t)
	return db, srv.restart
}

// restart stops and starts the container and waits until the server
// accepts connections again on the same port.
func (s *server) restart(ctx context.Context) error {
	// A fast shutdown (what the official image's STOPSIGNAL SIGINT does):
	// clients are disconnected and the server writes a checkpoint, so
	// committed data survives. Docker's default SIGTERM would wait for the
	// pools' idle connections to leave.
	// -W: do not wait, since the container ends with its server and would
	// take the waiting pg_ctl with it.
	code, _, err := s.container.Exec(ctx, []string{"pg_ctl", "stop", "-W", "-m", "fast", "-D", "/var/lib/postgresql/data"}, tcexec.WithUser("postgres"))
	if err != nil || code != 0 {
		return fmt.Errorf("pgtest: stop server: exit %d: %v", code, err)
	}
	if err := s.waitStopped(ctx); err != nil {
		return err
	}
	if err := s.container.Start(ctx); err != nil {
		return fmt.Errorf("pgtest: start server: %w", err)
	}
	// The container's log still holds the first start's "ready" lines, so
	// the wait strategy cannot tell; ask the server itself.
	for {
		pingCtx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.admin.Ping(pingCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: server did not come back: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *server) waitStopped(ctx context.Context) error {
	for {
		state, err := s.container.State(ctx)
		if err != nil {
			return fmt.Errorf("pgtest: container state: %w", err)
		}
		if !state.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: server did not stop: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
