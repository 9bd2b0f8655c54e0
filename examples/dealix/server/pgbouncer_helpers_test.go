package server_test

import (
	"bytes"
	"context"
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
)

// pgbouncerPoolSize is the server connections PgBouncer opens per role:
// fewer than the server's pools may hold, so the traffic is multiplexed.
const pgbouncerPoolSize = 8

// pgbouncerStatsUser may read the admin console's SHOW commands.
const pgbouncerStatsUser, pgbouncerStatsPassword = "pgbouncer_stats", "pgbouncer_stats_password"

// pgBouncer is a pgbouncer process in transaction pooling mode in front of
// one test database.
type pgBouncer struct {
	port   int
	dbname string
	stderr *lockedOutput
}

type lockedOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pgbouncerBinary finds Debian's pgbouncer (in /usr/sbin, often not on a
// user's PATH). Without it the test fails under CI and is skipped
// elsewhere, naming the package to install.
func pgbouncerBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const msg = "pgbouncer is not installed: apt-get install -y pgbouncer (the package's own service is not needed)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startPgBouncer runs pgbouncer on a free loopback port in front of the
// database directURL names, with a userlist holding the passwords of the
// given URLs' roles, and stops it at the end of the test. PgBouncer
// refuses to run as root: under root it runs as the postgres user (or
// nobody, where PostgreSQL's package is not installed).
func startPgBouncer(t *testing.T, directURL string, roleURLs ...string) *pgBouncer {
	t.Helper()
	bin := pgbouncerBinary(t)
	direct, err := pgx.ParseConfig(directURL)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{pgbouncerStatsUser: pgbouncerStatsPassword}
	for _, u := range roleURLs {
		cc, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		users[cc.User] = cc.Password
	}

	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			if pg, err = user.Lookup("nobody"); err != nil {
				t.Fatalf("pgbouncer refuses to run as root and there is no postgres or nobody user to run it as: %v", err)
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
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if cred != nil {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	port := freePort(t)
	var userlist strings.Builder
	for u, pw := range users {
		fmt.Fprintf(&userlist, "%q %q\n", u, pw)
	}
	auth := write("userlist.txt", userlist.String(), 0o600)
	ini := write("pgbouncer.ini", fmt.Sprintf(`[databases]
%s = host=%s port=%d dbname=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = plain
auth_file = %s
stats_users = %s
pool_mode = transaction
default_pool_size = %d
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile =
pidfile =
`, direct.Database, direct.Host, direct.Port, direct.Database, port, auth, pgbouncerStatsUser, pgbouncerPoolSize), 0o644)

	b := &pgBouncer{port: port, dbname: direct.Database, stderr: &lockedOutput{}}
	cmd := exec.Command(bin, ini)
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGTERM: immediate shutdown; the test's clients are gone by then.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("pgbouncer output:\n%s", b.stderr)
		}
	})

	// Ready when its admin console answers.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("pgbouncer exited: %v\n%s", err, b.stderr)
		default:
		}
		if _, err := b.show(context.Background(), "VERSION"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("pgbouncer did not answer: %v\n%s", err, b.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// stats returns SHOW STATS's row for the test database.
func (b *pgBouncer) stats(t *testing.T) map[string]string {
	t.Helper()
	rows, err := b.show(context.Background(), "STATS")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["database"] == b.dbname {
			return r
		}
	}
	t.Fatalf("SHOW STATS has no row for %s: %v", b.dbname, rows)
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
