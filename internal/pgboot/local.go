package pgboot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Files in a local cluster's data directory.
const (
	pgdataName   = "pgdata"       // the cluster itself (initdb's directory)
	passwordName = "password"     // the superuser's password; marks the directory as this package's
	portName     = "port"         // the port of the last start
	logName      = "postgres.log" // the server's and initdb's output
	lockName     = "lock"         // held while a program runs the cluster
)

// DebianBinGlob is where Debian and Ubuntu install PostgreSQL's binaries,
// one directory per major version.
const DebianBinGlob = "/usr/lib/postgresql/*/bin"

// LocalStartTimeout bounds how long a local cluster may take to accept
// connections after its server process started.
const LocalStartTimeout = time.Minute

// DefaultDataDir is where a persistent local cluster lives by default:
// dealix/postgres under the user's cache directory, or
// /var/lib/dealix/postgres for root, whose home the unprivileged user that
// runs PostgreSQL cannot enter.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/dealix/postgres"
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "dealix", "postgres")
}

// binaries are one installation's initdb and postgres.
type binaries struct {
	dir     string
	version int // major version
}

func (b binaries) initdb() string   { return filepath.Join(b.dir, "initdb") }
func (b binaries) postgres() string { return filepath.Join(b.dir, "postgres") }

// findBinaries finds initdb and postgres: in binDir only when it is set,
// otherwise the newest of the installation on PATH and those under
// DebianBinGlob (the one on PATH wins a tie).
func findBinaries(binDir string) (binaries, error) {
	if binDir != "" {
		b, err := binariesIn(binDir)
		if err != nil {
			return binaries{}, err
		}
		return b, nil
	}
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
	}
	dirs, _ := filepath.Glob(DebianBinGlob)
	candidates = append(candidates, dirs...)
	var best binaries
	var errs []error
	for _, dir := range candidates {
		b, err := binariesIn(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b.version > best.version {
			best = b
		}
	}
	if best.dir == "" {
		if len(errs) == 0 {
			return binaries{}, errors.New("initdb is not on PATH and " + DebianBinGlob + " holds no installation")
		}
		return binaries{}, errors.Join(errs...)
	}
	return best, nil
}

// binariesIn checks dir holds initdb and postgres and reads their version.
func binariesIn(dir string) (binaries, error) {
	b := binaries{dir: dir}
	for _, p := range []string{b.initdb(), b.postgres()} {
		st, err := os.Stat(p)
		if err != nil {
			return binaries{}, fmt.Errorf("no %s in %s", filepath.Base(p), dir)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return binaries{}, fmt.Errorf("%s is not executable", p)
		}
	}
	out, err := exec.Command(b.postgres(), "--version").Output()
	if err != nil {
		return binaries{}, fmt.Errorf("%s --version: %w", b.postgres(), err)
	}
	v, err := parseVersion(string(out))
	if err != nil {
		return binaries{}, fmt.Errorf("%s --version: %w", b.postgres(), err)
	}
	b.version = v
	return b, nil
}

// parseVersion reads the major version from "postgres (PostgreSQL) 15.18 …".
func parseVersion(out string) (int, error) {
	_, rest, ok := strings.Cut(out, "(PostgreSQL) ")
	if !ok {
		return 0, fmt.Errorf("unexpected version %q", strings.TrimSpace(out))
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	v, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0, fmt.Errorf("unexpected version %q", strings.TrimSpace(out))
	}
	return v, nil
}

// runAs is the user PostgreSQL runs as: nil (this process's own) unless
// this process is root, which PostgreSQL refuses.
type runAs struct {
	name     string
	uid, gid int
}

func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid), Groups: []uint32{}}
}

func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	return os.Lchown(path, r.uid, r.gid)
}

func unprivilegedUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("user %s: non-numeric ids", name))
			continue
		}
		return &runAs{name: name, uid: uid, gid: gid}, nil
	}
	return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user to run as and neither postgres nor nobody exists: %w", errors.Join(errs...))
}

// reachableBy reports the first directory above path that r cannot enter.
func reachableBy(path string, r *runAs) error {
	if r == nil {
		return nil
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err == nil {
			sys, ok := st.Sys().(*syscall.Stat_t)
			mode := st.Mode().Perm()
			enter := mode&0o001 != 0 ||
				(ok && int(sys.Uid) == r.uid && mode&0o100 != 0) ||
				(ok && int(sys.Gid) == r.gid && mode&0o010 != 0)
			if !enter {
				return fmt.Errorf("user %s, which runs PostgreSQL because PostgreSQL refuses root, cannot enter %s: "+
					"choose a data directory outside it, such as %s", r.name, dir, "/var/lib/dealix/postgres")
			}
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// cluster is a local PostgreSQL cluster and its running server.
type cluster struct {
	dir      string
	temp     bool
	bins     binaries
	user     *runAs
	port     int
	password string
	settings map[string]string
	opts     *Options
	proc     *proc
	lock     *os.File
}

func (c *cluster) pgdata() string { return filepath.Join(c.dir, pgdataName) }

func (c *cluster) adminURL() string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

func startLocal(ctx context.Context, opts *Options, bins binaries) (*Server, error) {
	who, err := unprivilegedUser()
	if err != nil {
		return nil, err
	}
	c := &cluster{bins: bins, user: who, settings: opts.Settings, opts: opts}
	err = c.prepareDir(opts)
	if err == nil {
		err = c.start(ctx, opts.Port)
	}
	if err != nil {
		c.unlock()
		if c.temp && c.dir != "" {
			_ = os.RemoveAll(c.dir)
		}
		return nil, err
	}
	return &Server{AdminURL: c.adminURL(), Source: SourceLocal, DataDir: c.dir, local: c}, nil
}

// prepareDir makes the data directory ready: created (or reset), owned by
// the user PostgreSQL runs as, with a password and an initialised cluster.
func (c *cluster) prepareDir(opts *Options) error {
	if opts.DataDir == "" {
		base := os.TempDir()
		if reachableBy(filepath.Join(base, "x"), c.user) != nil {
			base = "/tmp"
		}
		dir, err := os.MkdirTemp(base, "pgboot-")
		if err != nil {
			return fmt.Errorf("pgboot: temporary data directory: %w", err)
		}
		c.dir, c.temp = dir, true
	} else {
		dir, err := filepath.Abs(opts.DataDir)
		if err != nil {
			return fmt.Errorf("pgboot: data directory: %w", err)
		}
		c.dir = dir
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("pgboot: data directory: %w", err)
		}
		if err := reachableBy(dir, c.user); err != nil {
			return fmt.Errorf("pgboot: data directory %s: %w", dir, err)
		}
		if err := checkOurs(dir); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("pgboot: data directory: %w", err)
		}
		if err := c.lockDir(); err != nil {
			return err
		}
		if opts.Reset {
			opts.log("resetting the local cluster", "dir", dir)
			if err := c.wipe(); err != nil {
				return err
			}
		}
	}
	if err := c.user.chown(c.dir); err != nil {
		return fmt.Errorf("pgboot: data directory: %w", err)
	}
	if err := c.loadPassword(); err != nil {
		return err
	}
	return c.initdb()
}

// lockDir takes an exclusive lock on the directory for as long as the
// cluster runs, so a second program given the same directory is told so
// instead of racing the first through initdb.
func (c *cluster) lockDir() error {
	f, err := os.OpenFile(filepath.Join(c.dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("pgboot: data directory %s is in use by another program's cluster: stop it or choose another directory", c.dir)
		}
		return fmt.Errorf("pgboot: lock %s: %w", c.dir, err)
	}
	c.lock = f
	return nil
}

func (c *cluster) unlock() {
	if c.lock != nil {
		_ = c.lock.Close() // releases the lock
		c.lock = nil
	}
}

// wipe removes everything in the directory but the lock.
func (c *cluster) wipe() error {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("pgboot: reset %s: %w", c.dir, err)
	}
	for _, e := range entries {
		if e.Name() == lockName {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, e.Name())); err != nil {
			return fmt.Errorf("pgboot: reset %s: %w", c.dir, err)
		}
	}
	return nil
}

// checkOurs refuses a directory that holds anything but a cluster made by
// this package, so neither initdb nor Reset touches someone else's files.
func checkOurs(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && (len(entries) == 0 || len(entries) == 1 && entries[0].Name() == lockName)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgboot: data directory %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, passwordName)); err != nil {
		return fmt.Errorf("pgboot: data directory %s is not empty and holds no cluster made by this program; choose another or empty it", dir)
	}
	return nil
}

func (c *cluster) loadPassword() error {
	path := filepath.Join(c.dir, passwordName)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		c.password = strings.TrimSpace(string(b))
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgboot: %w", err)
	}
	// A new password means a new cluster: one initialised with another
	// password would refuse it.
	if err := os.RemoveAll(c.pgdata()); err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("pgboot: password: %w", err)
	}
	c.password = hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	// initdb, running as the unprivileged user, reads it.
	return c.user.chown(path)
}

// initdb initialises the cluster unless a complete one is there.
func (c *cluster) initdb() error {
	if b, err := os.ReadFile(filepath.Join(c.pgdata(), "PG_VERSION")); err == nil {
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && v != c.bins.version {
			return fmt.Errorf("pgboot: the cluster in %s was made by PostgreSQL %d and the binaries in %s are PostgreSQL %d: reset the directory to start afresh",
				c.dir, v, c.bins.dir, c.bins.version)
		}
		return nil
	}
	// Left over from an initdb that did not finish.
	if err := os.RemoveAll(c.pgdata()); err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	c.opts.log("initialising a local cluster", "dir", c.dir, "binaries", c.bins.dir, "user", c.userName())
	args := []string{"-D", c.pgdata(), "-U", "postgres", "--auth=scram-sha-256", "--pwfile=" + filepath.Join(c.dir, passwordName),
		"--encoding=UTF8", "--locale=C"}
	if c.temp {
		args = append(args, "--no-sync") // nothing to keep after a crash
	}
	cmd := exec.Command(c.bins.initdb(), args...)
	c.setup(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgboot: initdb in %s as user %s: %w\n%s", c.pgdata(), c.userName(), err, tail(string(out)))
	}
	return nil
}

func (c *cluster) userName() string {
	if c.user == nil {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
		return strconv.Itoa(os.Geteuid())
	}
	return c.user.name
}

// setup runs cmd as the cluster's user, in its directory, with an
// environment free of PG* variables (PGPORT, PGDATA… would change what the
// binaries do) and a locale every system has.
func (c *cluster) setup(cmd *exec.Cmd) {
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.user.credential(),
		// Its own process group: a terminal's Ctrl-C goes to the caller,
		// which stops the server in order.
		Setpgid: true,
		// When the caller dies without stopping it, the kernel does:
		// SIGQUIT is PostgreSQL's immediate shutdown.
		Pdeathsig: syscall.SIGQUIT,
	}
}

// errPortTaken says the server could not bind its port: another program
// took it between the choice and the start.
var errPortTaken = errors.New("port taken")

// start runs the server and waits until it accepts connections. port 0
// reuses the port of the last start when it is free, else a free one, and
// tries another when that one is taken before the server binds it.
func (c *cluster) start(ctx context.Context, port int) error {
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = c.pickPort(attempt); err != nil {
				return err
			}
		}
		err := c.startOn(ctx, p)
		if err == nil || port != 0 || attempt == 3 || !errors.Is(err, errPortTaken) {
			return err
		}
	}
}

func (c *cluster) startOn(ctx context.Context, port int) error {
	c.port = port
	_ = os.WriteFile(filepath.Join(c.dir, portName), []byte(strconv.Itoa(port)+"\n"), 0o644)

	logPath := filepath.Join(c.dir, logName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgboot: %w", err)
	}
	defer logFile.Close() // the child has its own descriptor
	var logStart int64
	if st, err := logFile.Stat(); err == nil {
		logStart = st.Size()
	}
	args := []string{"-D", c.pgdata(), "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="}
	args = append(args, settingArgs(c.settings)...)
	cmd := exec.Command(c.bins.postgres(), args...)
	c.setup(cmd)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p, err := spawn(cmd)
	if err != nil {
		return fmt.Errorf("pgboot: start %s: %w", c.bins.postgres(), err)
	}
	c.proc = p
	waitCtx, cancel := context.WithTimeout(ctx, LocalStartTimeout)
	defer cancel()
	if err := waitReady(waitCtx, c.adminURL(), p.done, c.isOurs); err != nil {
		_ = c.stop(context.Background())
		out := c.logSince(logPath, logStart)
		if strings.Contains(out, "Address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return fmt.Errorf("pgboot: local cluster in %s did not start on port %d: %w\n%s", c.dir, port, err, out)
	}
	c.opts.log("local cluster ready", "dir", c.dir, "port", port, "version", c.bins.version)
	return nil
}

// isOurs makes sure the server that answered is this cluster's and not
// another one that holds the port.
func (c *cluster) isOurs(ctx context.Context, conn *pgx.Conn) error {
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return err
	}
	if dir != c.pgdata() {
		return fmt.Errorf("another server (data directory %s) answers on port %d", dir, c.port)
	}
	return nil
}

// pickPort chooses the port of a start: on the first attempt the last
// start's port when it is free.
func (c *cluster) pickPort(attempt int) (int, error) {
	if attempt == 1 {
		if b, err := os.ReadFile(filepath.Join(c.dir, portName)); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
				if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p))); err == nil {
					_ = l.Close()
					return p, nil
				}
			}
		}
	}
	return FreePort()
}

// logSince is the server's output from offset on, its last lines.
func (c *cluster) logSince(path string, offset int64) string {
	b, _ := os.ReadFile(path)
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	return tail(string(b))
}

// stop shuts the server down fast (SIGINT: clients are disconnected, a
// checkpoint is written) and waits for it; if ctx ends first, it is
// stopped immediately.
func (c *cluster) stop(ctx context.Context) error {
	p := c.proc
	if p == nil {
		return nil
	}
	c.proc = nil
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return fmt.Errorf("pgboot: local cluster did not stop in time: %w", ctx.Err())
}

func (c *cluster) restart(ctx context.Context) error {
	if err := c.stop(ctx); err != nil {
		return err
	}
	return c.start(ctx, c.port)
}

func (c *cluster) close(ctx context.Context) error {
	err := c.stop(ctx)
	c.unlock()
	if c.temp {
		if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("pgboot: remove %s: %w", c.dir, rmErr)
		}
	}
	return err
}

// proc is a running child process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
}

// spawn starts cmd from a goroutine locked to its thread until cmd exits:
// the kernel's parent-death signal follows the thread that started the
// child, and the Go runtime may otherwise retire that thread.
func spawn(cmd *exec.Cmd) (*proc, error) {
	p := &proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, after the
		// child has exited.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, <-started
}

// waitReady waits until the server at adminURL accepts a connection (that
// check, when not nil, accepts), or exited is closed (the server died), or
// ctx ends.
func waitReady(ctx context.Context, adminURL string, exited <-chan struct{}, check func(context.Context, *pgx.Conn) error) error {
	for {
		connCtx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(connCtx, adminURL)
		if err == nil && check != nil {
			err = check(connCtx, conn)
		}
		cancel()
		if conn != nil {
			_ = conn.Close(context.Background())
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w (last error: %v)", ctx.Err(), err)
		case <-exited:
			return errors.New("the server process exited")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// FreePort returns a port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail is the last lines of a program's output, for an error message.
func tail(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
