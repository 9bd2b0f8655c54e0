package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgboot"
)

// pgbouncerPoolSize is the server connections PgBouncer opens per role:
// fewer than the server's pools may hold, so the traffic is multiplexed.
const pgbouncerPoolSize = 8

// pgbouncerStatsUser may read the admin console's SHOW commands.
const pgbouncerStatsUser, pgbouncerStatsPassword = "pgbouncer_stats", "pgbouncer_stats_password"

// pgBouncer is a pgbouncer process in transaction pooling mode in front of
// one PostgreSQL server. Its one database entry is the wildcard: a client
// asking for any database is served by the database of that name on the
// server, so the tests' databases, created as they go, need no
// configuration.
type pgBouncer struct {
	port   int
	stderr *lockedBuffer
	stop   func()
}

// errNoPgBouncer names the package to install.
var errNoPgBouncer = errors.New("pgbouncer is not installed: apt-get install -y pgbouncer (the package's own service is not needed)")

// findPgBouncer finds Debian's pgbouncer (in /usr/sbin, often not on a
// user's PATH).
func findPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errNoPgBouncer
}

// pgbouncerBinary is findPgBouncer for a test that needs PgBouncer on its
// own: without it the test fails under CI or with the suite's switch set,
// and is skipped elsewhere, naming the package to install.
func pgbouncerBinary(t *testing.T) string {
	t.Helper()
	p, err := findPgBouncer()
	if err != nil {
		if os.Getenv("CI") != "" || throughPgBouncer {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// startPgBouncer runs pgbouncer on a free loopback port in front of the
// server directURL names, with a userlist holding the passwords of the
// given URLs' roles. The caller stops it with b.stop. PgBouncer refuses to
// run as root: under root it runs as the postgres user (or nobody, where
// PostgreSQL's package is not installed).
func startPgBouncer(bin, directURL string, roleURLs ...string) (_ *pgBouncer, err error) {
	direct, err := pgx.ParseConfig(directURL)
	if err != nil {
		return nil, err
	}
	users := map[string]string{pgbouncerStatsUser: pgbouncerStatsPassword}
	for _, u := range roleURLs {
		cc, err := pgx.ParseConfig(u)
		if err != nil {
			return nil, err
		}
		users[cc.User] = cc.Password
	}

	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			if pg, err = user.Lookup("nobody"); err != nil {
				return nil, fmt.Errorf("pgbouncer refuses to run as root and there is no postgres or nobody user to run it as: %w", err)
			}
		}
		uid, _ = strconv.Atoi(pg.Uid)
		gid, _ = strconv.Atoi(pg.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// A directory of its own that the pgbouncer user can read (t.TempDir's
	// parent is private to the test's user).
	dir, err := os.MkdirTemp("", "dealix-pgbouncer-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	write := func(name, content string, mode os.FileMode) (string, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return "", err
		}
		if cred != nil {
			if err := os.Chown(p, uid, gid); err != nil {
				return "", err
			}
		}
		return p, nil
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}

	port, err := pgboot.FreePort()
	if err != nil {
		return nil, err
	}
	var userlist strings.Builder
	for u, pw := range users {
		fmt.Fprintf(&userlist, "%q %q\n", u, pw)
	}
	auth, err := write("userlist.txt", userlist.String(), 0o600)
	if err != nil {
		return nil, err
	}
	// max_client_conn: every server a test starts holds up to its app
	// pool (20) and system pool (12) of client connections, three
	// instances in some tests, several tests at once.
	ini, err := write("pgbouncer.ini", fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = plain
auth_file = %s
stats_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 4000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile =
pidfile =
`, direct.Host, direct.Port, port, auth, pgbouncerStatsUser, pgbouncerPoolSize), 0o644)
	if err != nil {
		return nil, err
	}

	b := &pgBouncer{port: port, stderr: &lockedBuffer{}}
	cmd := exec.Command(bin, ini)
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	// Its own process group, and SIGTERM from the kernel should this
	// process die without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			// SIGTERM: immediate shutdown; the clients are gone by then.
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			_ = os.RemoveAll(dir)
		})
	}

	// Ready when its admin console answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer exited: %v\n%s", err, b.stderr)
		default:
		}
		if _, err := b.show(context.Background(), "VERSION"); err == nil {
			return b, nil
		} else if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("pgbouncer did not answer: %v\n%s", err, b.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startPgBouncerForTest is startPgBouncer for one test, stopped when it
// ends (its output logged when the test failed).
func startPgBouncerForTest(t *testing.T, directURL string, roleURLs ...string) *pgBouncer {
	t.Helper()
	b, err := startPgBouncer(pgbouncerBinary(t), directURL, roleURLs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("pgbouncer output:\n%s", b.stderr)
		}
	})
	return b
}

// pooledURL is roleURL pointed at PgBouncer. pgx's default exec mode names
// a prepared statement per connection and reuses it; in transaction mode
// the next statement may run on another server connection, where that
// name does not exist (PgBouncer before 1.21 does not track prepared
// statements). cache_describe sends each statement unnamed (Parse, Bind,
// Execute and Sync in one message group, so on one server connection) and
// only caches its parameter and result types on the client.
func (b *pgBouncer) pooledURL(t *testing.T, roleURL string) string {
	t.Helper()
	u, err := url.Parse(roleURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port))
	q := u.Query()
	q.Set("sslmode", "disable")
	q.Set("default_query_exec_mode", "cache_describe")
	u.RawQuery = q.Encode()
	return u.String()
}

// show runs a SHOW command on the admin console and returns its rows as
// maps of column to text. The console speaks the simple protocol only.
func (b *pgBouncer) show(ctx context.Context, what string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol",
		pgbouncerStatsUser, pgbouncerStatsPassword, b.port))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SHOW "+what)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		// The simple protocol answers in text: keep it as PgBouncer wrote it.
		vals := rows.RawValues()
		row := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			row[f.Name] = string(vals[i])
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// stats returns SHOW STATS's row for the database dbname.
func (b *pgBouncer) stats(t *testing.T, dbname string) map[string]string {
	t.Helper()
	rows, err := b.show(context.Background(), "STATS")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["database"] == dbname {
			return r
		}
	}
	t.Fatalf("SHOW STATS has no row for %s: %v", dbname, rows)
	return nil
}

func statInt(t *testing.T, row map[string]string, col string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(row[col], 10, 64)
	if err != nil {
		t.Fatalf("%s = %q: %v", col, row[col], err)
	}
	return n
}
