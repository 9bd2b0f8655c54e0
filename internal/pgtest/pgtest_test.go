package pgtest_test

import (
	"context"
	"embed"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgboot"
	"github.com/dealix/platform/internal/pgtest"
)

//go:embed testdata/migrations/*.sql
var testMigrations embed.FS

const (
	tenantA = "6f1c1a8e-0000-4000-8000-00000000000a"
	tenantB = "6f1c1a8e-0000-4000-8000-00000000000b"
	// envChild marks a child test process started by a test in this file.
	envChild = "PGTEST_CHILD"
	// envMarker names a database the parent created on its server, so a
	// child can prove it connected to that same server.
	envMarker = "PGTEST_MARKER_DB"
)

func migrateNotes(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "pgtest", FS: testMigrations, Dir: "testdata/migrations"})
	return err
}

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(migrateNotes))
}

func TestServerIsRealPostgres(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()

	var version string
	require.NoError(t, db.App.QueryRow(ctx, "SELECT version()").Scan(&version))
	require.True(t, strings.HasPrefix(version, "PostgreSQL "), version)
	var num int
	require.NoError(t, db.App.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&num))
	require.GreaterOrEqual(t, num, 150000, "PostgreSQL 15 or newer")

	switch pgtest.Source() {
	case pgboot.SourceURL:
		require.NotEmpty(t, os.Getenv(pgtest.EnvDatabaseURL), "a server from a URL came from the URL variable")
		require.Empty(t, pgtest.ContainerID())
		return
	case pgboot.SourceLocal:
		// A cluster of the helper's own, from PostgreSQL's binaries:
		// loopback only, in a temporary pgboot directory.
		require.Empty(t, os.Getenv(pgtest.EnvDatabaseURL))
		require.Empty(t, pgtest.ContainerID())
		var listen, dataDir string
		require.NoError(t, db.Admin.QueryRow(ctx, "SELECT current_setting('listen_addresses'), current_setting('data_directory')").Scan(&listen, &dataDir))
		require.Equal(t, "127.0.0.1", listen)
		require.Contains(t, dataDir, "/pgboot-")
		return
	}
	require.Equal(t, pgboot.SourceDocker, pgtest.Source())
	// Docker names a container's host after the start of its id: reading
	// the server's own /etc/hostname proves the server runs in it.
	var hostname string
	require.NoError(t, db.Admin.QueryRow(ctx, "SELECT btrim(pg_read_file('/etc/hostname'), E'\\n')").Scan(&hostname))
	require.NotEmpty(t, hostname)
	require.True(t, strings.HasPrefix(pgtest.ContainerID(), hostname), "container %s, server host %s", pgtest.ContainerID(), hostname)
}

func TestEachTestHasItsOwnDatabase(t *testing.T) {
	t.Parallel()
	// Both subtests write a row, wait until the other has written too (or
	// a deadline passes, so a run with -parallel 1 still finishes), and
	// then must see only their own row.
	written := make(chan struct{}, 2)
	for _, body := range []string{"first", "second"} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			ctx := context.Background()
			insertNote(t, db.System, tenantA, body)
			written <- struct{}{}
			waitForPeer(written)
			var bodies []string
			rows, err := db.System.Query(ctx, "SELECT body FROM platform.notes")
			require.NoError(t, err)
			bodies, err = pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.Equal(t, []string{body}, bodies)
		})
	}
}

// waitForPeer waits for the other subtest's write, at most a few seconds.
func waitForPeer(written chan struct{}) {
	deadline := time.Now().Add(5 * time.Second)
	for len(written) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRolesAttributes(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	for _, tc := range []struct {
		pool             *pgxpool.Pool
		name             string
		bypassRLS, super bool
	}{
		{db.App, pgtest.AppRole, false, false},
		{db.Owner, pgtest.OwnerRole, false, false},
		{db.System, pgtest.SystemRole, true, false},
	} {
		var user string
		var bypass, super bool
		require.NoError(t, tc.pool.QueryRow(ctx,
			"SELECT current_user, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&user, &bypass, &super))
		require.Equal(t, tc.name, user)
		require.Equal(t, tc.bypassRLS, bypass, "%s rolbypassrls", user)
		require.Equal(t, tc.super, super, "%s rolsuper", user)
	}

	// The app role owns nothing in the database, so RLS cannot be skipped
	// by ownership either.
	var owned int
	require.NoError(t, db.App.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))
		     + (SELECT count(*) FROM pg_namespace WHERE nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user))`).Scan(&owned))
	require.Zero(t, owned)
	var tableOwner string
	require.NoError(t, db.App.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE schemaname = 'platform' AND tablename = 'notes'").Scan(&tableOwner))
	require.Equal(t, pgtest.OwnerRole, tableOwner)
}

func TestAppRoleIsBoundByRLSAndSystemRoleIsNot(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	insertNote(t, db.System, tenantA, "a's note")
	insertNote(t, db.System, tenantB, "b's note")

	require.Equal(t, 0, countNotes(t, db.App, ""), "no tenant set: default deny")
	require.Equal(t, 1, countNotes(t, db.App, tenantA))
	require.Equal(t, 1, countNotes(t, db.App, tenantB))
	require.Equal(t, 2, countNotes(t, db.System, ""), "system role bypasses RLS")

	// WITH CHECK: the app role cannot write a row for another tenant.
	err := pgx.BeginFunc(ctx, db.App, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenantA); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO platform.notes (tenant_id, body) VALUES ($1, 'sneaky')", tenantB)
		return err
	})
	require.ErrorContains(t, err, "row-level security")

	// The tenant setting is transaction-local: it does not outlive the
	// transaction on the pooled connection.
	conn, err := db.App.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenantA)
		return err
	}))
	var setting string
	require.NoError(t, conn.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&setting))
	require.Empty(t, setting)
}

func TestMigrationsTableIsReadOnlyForServingRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var n int
	require.NoError(t, db.App.QueryRow(ctx, "SELECT count(*) FROM platform.schema_migrations WHERE package = 'pgtest'").Scan(&n))
	require.Equal(t, 1, n)
	_, err := db.App.Exec(ctx, "DELETE FROM platform.schema_migrations")
	require.ErrorContains(t, err, "permission denied")
}

func TestURLVariableUsesExistingServer(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) == "url" {
		// Running on a server named by the URL variable: no container was
		// started, and the server is the one the URL names.
		require.NotEmpty(t, os.Getenv(pgtest.EnvDatabaseURL))
		require.Empty(t, pgtest.ContainerID())
		require.Equal(t, os.Getenv(pgtest.EnvDatabaseURL), pgtest.AdminURL())
		if marker := os.Getenv(envMarker); marker != "" {
			db := pgtest.New(t)
			var exists bool
			require.NoError(t, db.Admin.QueryRow(context.Background(),
				"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", marker).Scan(&exists))
			require.True(t, exists, "the child sees the database its parent created: same server")
			insertNote(t, db.System, tenantA, "from the child")
			require.Equal(t, 1, countNotes(t, db.App, tenantA))
		}
		return
	}

	// Run this same test in a child process pointed at this binary's server
	// through the URL variable, with a marker only this server has.
	db := pgtest.New(t)
	ctx := context.Background()
	marker := "marker_" + strings.ReplaceAll(db.Name, "pgtest_", "")
	_, err := db.Admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{marker}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Admin.Exec(context.Background(), "DROP DATABASE "+pgx.Identifier{marker}.Sanitize()) })

	out, err := runChild(t, "^TestURLVariableUsesExistingServer$", map[string]string{
		envChild:              "url",
		envMarker:             marker,
		pgtest.EnvDatabaseURL: pgtest.AdminURL(),
		// A Docker engine that cannot exist: the child must not need one.
		"DOCKER_HOST": "unix:///nonexistent/docker.sock",
	})
	require.NoError(t, err, "child output:\n%s", out)
	require.Contains(t, out, "--- PASS: TestURLVariableUsesExistingServer")
}

// nothing is the environment of a child with no server at all: no URL, a
// Docker engine that cannot exist, no PostgreSQL binaries.
var nothing = map[string]string{
	pgtest.EnvDatabaseURL: "",
	"DOCKER_HOST":         "unix:///nonexistent/docker.sock",
	pgtest.EnvBinDir:      "/nonexistent/bin",
}

func with(env map[string]string, more ...string) map[string]string {
	out := map[string]string{}
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i+1 < len(more); i += 2 {
		out[more[i]] = more[i+1]
	}
	return out
}

func TestFailsClearlyWithoutAnyServer(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) == "none" {
		pgtest.New(t) // fails the test: there is no server
		t.Fatal("pgtest.New returned without a server")
	}
	out, err := runChild(t, "^TestFailsClearlyWithoutAnyServer$", with(nothing, envChild, "none"))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "output:\n%s", out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, out, "--- FAIL: TestFailsClearlyWithoutAnyServer")
	require.Contains(t, out, "pgtest: no PostgreSQL server: set DEALIX_TEST_DATABASE_URL to the URL of an existing server, make a Docker engine reachable (")
	require.Contains(t, out, "or install PostgreSQL's binaries, initdb and postgres, in /nonexistent/bin, the directory DEALIX_TEST_POSTGRES_BIN names")
	require.Equal(t, 1, strings.Count(out, "pgtest:"), "one message, output:\n%s", out)
	require.NotContains(t, out, "returned without a server")
	require.NotContains(t, out, "--- SKIP")
}

// TestPureTestNeedsNoServer is a test without a database: it passes in a
// child that has no server at all, since the server starts on the first
// database request only.
func TestPureTestNeedsNoServer(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) == "pure" {
		require.Empty(t, pgtest.Source(), "nothing was started")
		return
	}
	out, err := runChild(t, "^(TestPureTestNeedsNoServer|Example_noDatabase)$", with(nothing, envChild, "pure"))
	require.NoError(t, err, "output:\n%s", out)
	require.Contains(t, out, "--- PASS: TestPureTestNeedsNoServer")
	require.Contains(t, out, "--- PASS: Example_noDatabase")
	require.NotContains(t, out, "pgtest:")
}

// Example_noDatabase is an Example that needs no database.
func Example_noDatabase() {
	fmt.Println(pgtest.AppRole)
	// Output: dealix_app
}

// TestLocalBinariesWithoutURLOrDocker runs a database test in a child with
// neither the URL variable nor a Docker engine: the helper starts a cluster
// of its own from PostgreSQL's binaries.
func TestLocalBinariesWithoutURLOrDocker(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) == "local" {
		db := pgtest.New(t)
		require.Equal(t, pgboot.SourceLocal, pgtest.Source())
		insertNote(t, db.System, tenantA, "on a local cluster")
		require.Equal(t, 1, countNotes(t, db.App, tenantA))
		require.Equal(t, 0, countNotes(t, db.App, tenantB))
		return
	}
	out, err := runChild(t, "^(TestLocalBinariesWithoutURLOrDocker|TestServerIsRealPostgres|TestRolesAttributes)$", map[string]string{
		envChild:              "local",
		pgtest.EnvDatabaseURL: "",
		pgtest.EnvBinDir:      "",
		"DOCKER_HOST":         "unix:///nonexistent/docker.sock",
	})
	require.NoError(t, err, "output:\n%s", out)
	for _, name := range []string{"TestLocalBinariesWithoutURLOrDocker", "TestServerIsRealPostgres", "TestRolesAttributes"} {
		require.Contains(t, out, "--- PASS: "+name)
	}
}

func TestMissingImageIsNotPulledWithoutConsent(t *testing.T) {
	t.Parallel()
	if os.Getenv(envChild) == "image" {
		pgtest.New(t) // fails the test: the image is missing
		return
	}
	if pgtest.New(t); pgtest.ContainerID() == "" {
		// Without a Docker engine there is no engine to ask; the check
		// below needs one.
		require.NotEqual(t, pgboot.SourceDocker, pgtest.Source())
		return
	}
	out, err := runChild(t, "^TestMissingImageIsNotPulledWithoutConsent$", map[string]string{
		envChild:              "image",
		pgtest.EnvDatabaseURL: "",
		pgtest.EnvPullImage:   "",
		pgtest.EnvImage:       "dealix-absent-image:0",
	})
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "output:\n%s", out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, out, "image dealix-absent-image:0 is not on this Docker engine")
	require.Contains(t, out, "DEALIX_TEST_PULL_IMAGE=true")
}

// TestKilledChildLeavesNoDatabase: a process started by a test binary names
// its databases under the binary's template, so the binary drops them when
// it stops, even those of a child killed before its own clean-up. Three
// generations: this test, a middle child that runs a doomed grandchild,
// and the grandchild, killed with SIGKILL while its database exists.
func TestKilledChildLeavesNoDatabase(t *testing.T) {
	switch os.Getenv(envChild) {
	case "doomed":
		db := pgtest.New(t)
		fmt.Printf("DOOMED_DB=%s\n", db.Name)
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGKILL))
		time.Sleep(time.Minute) // never reached: SIGKILL cannot be caught
	case "middle":
		db := pgtest.New(t)
		template := templateOf(db.Name)
		out, err := runChild(t, "^TestKilledChildLeavesNoDatabase$", map[string]string{
			envChild:              "doomed",
			pgtest.EnvDatabaseURL: pgtest.AdminURL(),
		})
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "output:\n%s", out)
		status := exit.Sys().(syscall.WaitStatus)
		require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL, "killed, output:\n%s", out)
		doomed := outputValue(out, "DOOMED_DB")
		require.True(t, strings.HasPrefix(doomed, template+"_c"), "named under %s: %s", template, doomed)
		require.True(t, databaseExists(t, db.Admin, doomed), "the killed child could not drop it")
		fmt.Printf("MIDDLE_TEMPLATE=%s\nDOOMED_DB=%s\n", template, doomed)
		return
	}
	t.Parallel()
	db := pgtest.New(t)
	out, err := runChild(t, "^TestKilledChildLeavesNoDatabase$", map[string]string{
		envChild:              "middle",
		pgtest.EnvDatabaseURL: pgtest.AdminURL(),
	})
	require.NoError(t, err, "output:\n%s", out)
	middle, doomed := outputValue(out, "MIDDLE_TEMPLATE"), outputValue(out, "DOOMED_DB")
	require.True(t, strings.HasPrefix(middle, templateOf(db.Name)+"_c"), "the middle child named its databases under ours: %s", middle)
	require.False(t, databaseExists(t, db.Admin, doomed), "the middle child dropped its killed child's database when it stopped")
	var left int
	require.NoError(t, db.Admin.QueryRow(context.Background(),
		"SELECT count(*) FROM pg_database WHERE datname = $1 OR starts_with(datname, $2)", middle, middle+"_").Scan(&left))
	require.Zero(t, left, "nothing of the middle child's is left")
}

// templateOf is the template a test database was cloned from: its name
// without the sequence number.
func templateOf(name string) string {
	return name[:strings.LastIndex(name, "_")]
}

func outputValue(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}

func databaseExists(t *testing.T, admin *pgxpool.Pool, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	return exists
}

// runChild runs this test binary again for the tests matching pattern, with
// env overriding the parent's environment (an empty value unsets).
func runChild(t *testing.T, pattern string, env map[string]string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+pattern, "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		if _, overridden := env[strings.SplitN(kv, "=", 2)[0]]; !overridden {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, ctx.Err(), "the child must not hang; output:\n%s", out)
	return string(out), err
}

func insertNote(t *testing.T, pool *pgxpool.Pool, tenant, body string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), "INSERT INTO platform.notes (tenant_id, body) VALUES ($1, $2)", tenant, body)
	require.NoError(t, err)
}

// countNotes counts the notes pool can see with tenant set for the
// transaction ("" sets none).
func countNotes(t *testing.T, pool *pgxpool.Pool, tenant string) int {
	t.Helper()
	ctx := context.Background()
	var n int
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if tenant != "" {
			if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenant); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, "SELECT count(*) FROM platform.notes").Scan(&n)
	})
	require.NoError(t, err)
	return n
}

func TestRestartableServerComesBackWithItsData(t *testing.T) {
	t.Parallel()
	db, restart := pgtest.NewRestartable(t)
	ctx := context.Background()
	insertNote(t, db.System, tenantA, "before the restart")
	var before string
	require.NoError(t, db.System.QueryRow(ctx, "SELECT pg_postmaster_start_time()::text").Scan(&before))

	require.NoError(t, restart(ctx))

	// The pool's old connections died with the server; new ones reach the
	// restarted server on the same URL.
	var after string
	var err error
	for range 5 {
		if err = db.System.QueryRow(ctx, "SELECT pg_postmaster_start_time()::text").Scan(&after); err == nil {
			break
		}
	}
	require.NoError(t, err)
	require.NotEqual(t, before, after, "the server really restarted")
	require.Equal(t, 1, countNotes(t, db.App, tenantA), "committed data survived")
}
