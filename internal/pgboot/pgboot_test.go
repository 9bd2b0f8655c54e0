package pgboot_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgboot"
)

// noDocker is a Docker engine that cannot exist: Start must pass it over.
const noDocker = "unix:///nonexistent/docker.sock"

// envChild makes this test binary, run again by a test, start a cluster
// and die.
const envChild = "PGBOOT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "die" {
		startAndDie()
	}
	os.Exit(m.Run())
}

// startAndDie starts a temporary cluster, prints its URL and data
// directory, and kills this process before it can close anything.
func startAndDie() {
	srv, err := pgboot.Start(context.Background(), pgboot.Options{})
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(3)
	}
	fmt.Printf("URL=%s\nDIR=%s\n", srv.AdminURL, srv.DataDir)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	time.Sleep(time.Minute) // never reached: SIGKILL cannot be caught
}

func query(t *testing.T, url, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var out string
	require.NoError(t, conn.QueryRow(ctx, sql, args...).Scan(&out))
	return out
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

// refused says whether nothing accepts connections at url any more.
func refused(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err == nil {
		_ = conn.Close(ctx)
		return false
	}
	return true
}

// reachableDir makes a directory the unprivileged user PostgreSQL runs as
// (when the tests run as root) can enter: t.TempDir's is closed to it.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgboot-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestLocalClusterWhenDockerIsUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	ctx := context.Background()
	srv, err := pgboot.Start(ctx, pgboot.Options{Settings: map[string]string{"max_connections": "123"}})
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = srv.Close(ctx)
		}
	})
	require.Equal(t, pgboot.SourceLocal, srv.Source)
	require.Empty(t, srv.ContainerID)
	require.DirExists(t, filepath.Join(srv.DataDir, "pgdata"))

	// The machines this library is developed and tested on have
	// PostgreSQL 15 or newer; the search found it without help.
	require.GreaterOrEqual(t, query(t, srv.AdminURL, "SELECT current_setting('server_version_num')"), "150000")
	require.Equal(t, "127.0.0.1", query(t, srv.AdminURL, "SHOW listen_addresses"))
	require.Equal(t, "", query(t, srv.AdminURL, "SHOW unix_socket_directories"))
	require.Equal(t, "123", query(t, srv.AdminURL, "SHOW max_connections"), "settings reach the server")
	require.Equal(t, "scram-sha-256", query(t, srv.AdminURL, "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1"))
	exec1(t, srv.AdminURL, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
	require.Equal(t, "42", query(t, srv.AdminURL, "SELECT v::text FROM t"))

	// The password is required: the URL without it is refused.
	noPassword := strings.Replace(srv.AdminURL, ":"+passwordOf(t, srv.DataDir)+"@", "@", 1)
	require.NotEqual(t, srv.AdminURL, noPassword)
	_, err = pgx.Connect(ctx, noPassword)
	require.Error(t, err)

	if os.Geteuid() == 0 {
		// PostgreSQL refuses root: it runs as an unprivileged user that
		// owns the cluster.
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(filepath.Join(srv.DataDir, "pgdata"), &st))
		require.NotZero(t, st.Uid)
		want, err := user.Lookup("postgres")
		if err != nil {
			want, err = user.Lookup("nobody")
		}
		require.NoError(t, err)
		require.Equal(t, want.Uid, fmt.Sprint(st.Uid))
	}

	dir := srv.DataDir
	require.NoError(t, srv.Close(ctx))
	closed = true
	require.NoDirExists(t, dir, "a temporary directory goes with the cluster")
	require.True(t, refused(srv.AdminURL), "the server stopped")
}

func passwordOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "password"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func TestPersistentDataDirKeepsDataAndResetWipesIt(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	ctx := context.Background()
	dir := filepath.Join(reachableDir(t), "cluster")

	first, err := pgboot.Start(ctx, pgboot.Options{DataDir: dir})
	require.NoError(t, err)
	require.Equal(t, pgboot.SourceLocal, first.Source)
	require.Equal(t, dir, first.DataDir)
	exec1(t, first.AdminURL, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('demo data')")
	// One program at a time: a second one is told, and the first one's
	// cluster is untouched.
	for _, reset := range []bool{false, true} {
		_, err = pgboot.Start(ctx, pgboot.Options{DataDir: dir, Reset: reset})
		require.ErrorContains(t, err, "is in use by another program's cluster")
	}
	require.Equal(t, "demo data", query(t, first.AdminURL, "SELECT v FROM kept"))
	require.NoError(t, first.Close(ctx))
	require.True(t, refused(first.AdminURL))
	require.FileExists(t, filepath.Join(dir, "pgdata", "PG_VERSION"), "a persistent directory is kept")

	second, err := pgboot.Start(ctx, pgboot.Options{DataDir: dir})
	require.NoError(t, err)
	require.Equal(t, first.AdminURL, second.AdminURL, "same password, and the last port while it is free")
	require.Equal(t, "demo data", query(t, second.AdminURL, "SELECT v FROM kept"))
	require.NoError(t, second.Close(ctx))

	reset, err := pgboot.Start(ctx, pgboot.Options{DataDir: dir, Reset: true})
	require.NoError(t, err)
	defer reset.Close(ctx)
	require.NotEqual(t, first.AdminURL, reset.AdminURL, "a new cluster has a new password")
	require.Equal(t, "false", query(t, reset.AdminURL, "SELECT (to_regclass('kept') IS NOT NULL)::text"))
}

func TestRestartKeepsPortAndData(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	ctx := context.Background()
	srv, err := pgboot.Start(ctx, pgboot.Options{})
	require.NoError(t, err)
	defer srv.Close(ctx)
	exec1(t, srv.AdminURL, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)")
	before := query(t, srv.AdminURL, "SELECT pg_postmaster_start_time()::text")

	require.NoError(t, srv.Restart(ctx))
	after := query(t, srv.AdminURL, "SELECT pg_postmaster_start_time()::text")
	require.NotEqual(t, before, after, "the server really restarted")
	require.Equal(t, "7", query(t, srv.AdminURL, "SELECT v::text FROM t"))
}

func TestForeignDirectoryIsRefused(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	dir := reachableDir(t)
	precious := filepath.Join(dir, "precious.txt")
	require.NoError(t, os.WriteFile(precious, []byte("mine"), 0o644))
	for _, reset := range []bool{false, true} {
		_, err := pgboot.Start(context.Background(), pgboot.Options{DataDir: dir, Reset: reset})
		require.ErrorContains(t, err, "holds no cluster made by this program")
		require.FileExists(t, precious, "reset=%v", reset)
	}
}

func TestUnreachableDirectoryIsExplained(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	dir := filepath.Join(t.TempDir(), "cluster") // t.TempDir is mode 700
	srv, err := pgboot.Start(context.Background(), pgboot.Options{DataDir: dir})
	if os.Geteuid() != 0 {
		// Running as its owner, PostgreSQL can use it.
		require.NoError(t, err)
		require.NoError(t, srv.Close(context.Background()))
		return
	}
	require.ErrorContains(t, err, "user postgres, which runs PostgreSQL because PostgreSQL refuses root, cannot enter "+os.TempDir())
	require.ErrorContains(t, err, "choose a data directory outside it")
}

func TestNoServerNamesTheThreeOptions(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	_, err := pgboot.Start(context.Background(), pgboot.Options{BinDir: "/nonexistent/bin"})
	require.ErrorIs(t, err, pgboot.ErrNoServer)
	msg := err.Error()
	require.Contains(t, msg, "set DATABASE_URL to the URL of an existing server")
	require.Contains(t, msg, "make a Docker engine reachable (DOCKER_HOST "+noDocker+" does not answer")
	require.Contains(t, msg, "install PostgreSQL's binaries, initdb and postgres, in /nonexistent/bin, the directory DEALIX_POSTGRES_BIN names")

	// A caller's own variable names appear instead.
	opts := pgboot.EnvNames{URL: "MY_URL", BinDir: "MY_BIN"}.Options()
	opts.BinDir = "/nonexistent/bin"
	_, err = pgboot.Start(context.Background(), opts)
	require.ErrorIs(t, err, pgboot.ErrNoServer)
	require.Contains(t, err.Error(), "set MY_URL to")
	require.Contains(t, err.Error(), "the directory MY_BIN names")
}

func TestURLIsUsedAsIs(t *testing.T) {
	// No engine and no binaries either: a URL needs neither.
	t.Setenv("DOCKER_HOST", noDocker)
	url := "postgres://someone:secret@127.0.0.1:1/db?sslmode=disable"
	srv, err := pgboot.Start(context.Background(), pgboot.Options{URL: url, BinDir: "/nonexistent/bin"})
	require.NoError(t, err)
	require.Equal(t, pgboot.SourceURL, srv.Source)
	require.Equal(t, url, srv.AdminURL)
	require.Error(t, srv.Restart(context.Background()), "a lent server is not restarted")
	require.NoError(t, srv.Close(context.Background()))
	require.Equal(t, "postgres://someone:xxxxx@127.0.0.1:1/db?sslmode=disable", pgboot.Redact(url))

	_, err = pgboot.Start(context.Background(), pgboot.Options{URL: "postgres://[::1"})
	require.ErrorContains(t, err, "DATABASE_URL")
	require.NotErrorIs(t, err, pgboot.ErrNoServer)
}

func TestEnvNamesReadTheEnvironment(t *testing.T) {
	t.Setenv("X_URL", "postgres://u@127.0.0.1/db")
	t.Setenv("X_IMAGE", "img:1")
	t.Setenv("X_PULL", "TRUE")
	t.Setenv("X_BIN", "/opt/pg/bin")
	n := pgboot.EnvNames{URL: "X_URL", Image: "X_IMAGE", Pull: "X_PULL", BinDir: "X_BIN"}
	opts := n.Options()
	require.Equal(t, pgboot.Options{URL: "postgres://u@127.0.0.1/db", Image: "img:1", AllowPull: true, BinDir: "/opt/pg/bin", Env: n}, opts)
	t.Setenv("X_PULL", "yes")
	require.False(t, n.Options().AllowPull, "only true allows a pull")
}

// TestKilledCallerLeavesNoServer kills a process that started a cluster:
// the kernel stops the server, which must not outlive its caller.
func TestKilledCallerLeavesNoServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=die", "DOCKER_HOST="+noDocker)
	out, err := cmd.Output()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "the child must die, output:\n%s", out)
	status := exit.Sys().(syscall.WaitStatus)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "killed, output:\n%s", out)

	var url, dir string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "URL="); ok {
			url = v
		}
		if v, ok := strings.CutPrefix(line, "DIR="); ok {
			dir = v
		}
	}
	require.NotEmpty(t, url, "output:\n%s", out)
	t.Cleanup(func() { _ = os.RemoveAll(dir) }) // nobody was left to remove it
	require.Eventually(t, func() bool { return refused(url) }, time.Minute, 50*time.Millisecond,
		"the server went with the process that started it")
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "pgdata", "postmaster.pid"))
		return errors.Is(err, os.ErrNotExist)
	}, time.Minute, 50*time.Millisecond, "and it shut down in order")
}

func TestTakenPort(t *testing.T) {
	t.Setenv("DOCKER_HOST", noDocker)
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	// A port the caller fixed is not exchanged for another: the start
	// fails and says why.
	_, err = pgboot.Start(ctx, pgboot.Options{Port: taken})
	require.ErrorContains(t, err, fmt.Sprintf("did not start on port %d", taken))
	require.ErrorContains(t, err, "Address already in use")

	// The last start's port, taken meanwhile, is.
	dir := filepath.Join(reachableDir(t), "cluster")
	srv, err := pgboot.Start(ctx, pgboot.Options{DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, srv.Close(ctx))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "port"), []byte(strconv.Itoa(taken)+"\n"), 0o644))
	srv, err = pgboot.Start(ctx, pgboot.Options{DataDir: dir})
	require.NoError(t, err)
	defer srv.Close(ctx)
	require.NotContains(t, srv.AdminURL, fmt.Sprintf(":%d/", taken))
	require.Equal(t, "1", query(t, srv.AdminURL, "SELECT 1::text"))
}
