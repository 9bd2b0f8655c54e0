package migrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/migrate"
	"github.com/dealix/platform/internal/pgtest"
)

func TestMain(m *testing.M) {
	pgtest.Main(m)
}

func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

var twoFiles = files(map[string]string{
	"001_create_items.up.sql":  "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);",
	"002_add_created.up.sql":   "ALTER TABLE items ADD COLUMN created timestamptz NOT NULL DEFAULT now();\nCREATE INDEX items_created ON items (created);",
	"002_add_created.down.sql": "ALTER TABLE items DROP COLUMN created;",
	"README.md":                "not a migration",
})

func versions(ms []migrate.Migration) []int {
	out := []int{}
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

func recorded(t *testing.T, pool *pgxpool.Pool, pkg string) []int {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT version FROM platform.schema_migrations WHERE package = $1 ORDER BY version", pkg)
	require.NoError(t, err)
	defer rows.Close()
	out := []int{}
	for rows.Next() {
		var v int
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestApplyTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	src := migrate.Source{Package: "items", FS: twoFiles}

	applied, err := migrate.Apply(ctx, db.Owner, src)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, versions(applied))
	require.Equal(t, "add_created", applied[1].Name)

	applied, err = migrate.Apply(ctx, db.Owner, src)
	require.NoError(t, err)
	require.Empty(t, applied)
	require.Equal(t, []int{1, 2}, recorded(t, db.Owner, "items"))

	// The files ran with search_path set to the library schema.
	var n int
	require.NoError(t, db.Owner.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'platform' AND table_name = 'items'").Scan(&n))
	require.Equal(t, 3, n)
}

func TestNewFilesAreAppliedLater(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	first := files(map[string]string{"001_a.up.sql": "CREATE TABLE a (id int);"})
	_, err := migrate.Apply(ctx, db.Owner, migrate.Source{Package: "p", FS: first})
	require.NoError(t, err)

	later := files(map[string]string{"001_a.up.sql": "CREATE TABLE a (id int);", "002_b.up.sql": "CREATE TABLE b (id int);"})
	applied, err := migrate.Apply(ctx, db.Owner, migrate.Source{Package: "p", FS: later})
	require.NoError(t, err)
	require.Equal(t, []int{2}, versions(applied))
}

func TestPackagesAreRecordedSeparately(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	_, err := migrate.Apply(ctx, db.Owner, migrate.Source{Package: "one", FS: files(map[string]string{"001_x.up.sql": "CREATE TABLE one_x (id int);"})})
	require.NoError(t, err)
	applied, err := migrate.Apply(ctx, db.Owner, migrate.Source{Package: "two", FS: files(map[string]string{"001_x.up.sql": "CREATE TABLE two_x (id int);"})})
	require.NoError(t, err)
	require.Equal(t, []int{1}, versions(applied), "version 1 of another package is not version 1 of this one")
	require.Equal(t, []int{1}, recorded(t, db.Owner, "one"))
	require.Equal(t, []int{1}, recorded(t, db.Owner, "two"))
}

func TestBrokenFileRollsBackCompletelyAndIsNamed(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	src := migrate.Source{Package: "broken", FS: files(map[string]string{
		"001_ok.up.sql":     "CREATE TABLE ok_table (id int);",
		"002_broken.up.sql": "CREATE TABLE half_done (id int);\nINSERT INTO half_done VALUES (1);\nCREATE TABLE oops (id int,;",
		"003_never.up.sql":  "CREATE TABLE never_table (id int);",
	})}

	applied, err := migrate.Apply(ctx, db.Owner, src)
	require.Equal(t, []int{1}, versions(applied))
	var merr *migrate.Error
	require.ErrorAs(t, err, &merr)
	require.Equal(t, "002_broken.up.sql", merr.File)
	require.Equal(t, "broken", merr.Package)
	require.Equal(t, 3, merr.Line, "the error points at the failing line")
	require.ErrorContains(t, err, "broken/002_broken.up.sql line 3")

	var exists []bool
	for _, table := range []string{"platform.ok_table", "platform.half_done", "platform.never_table"} {
		var ok bool
		require.NoError(t, db.Owner.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&ok))
		exists = append(exists, ok)
	}
	require.Equal(t, []bool{true, false, false}, exists, "002 left nothing behind and 003 did not run")
	require.Equal(t, []int{1}, recorded(t, db.Owner, "broken"))

	// The lock was released: a fixed file applies.
	fixed := src
	fixed.FS = files(map[string]string{
		"001_ok.up.sql":     "CREATE TABLE ok_table (id int);",
		"002_broken.up.sql": "CREATE TABLE half_done (id int);",
	})
	applied, err = migrate.Apply(ctx, db.Owner, fixed)
	require.NoError(t, err)
	require.Equal(t, []int{2}, versions(applied))
}

func TestChangedAppliedFileIsRefused(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	_, err := migrate.Apply(ctx, db.Owner, migrate.Source{Package: "c", FS: files(map[string]string{"001_a.up.sql": "CREATE TABLE c_a (id int);"})})
	require.NoError(t, err)
	_, err = migrate.Apply(ctx, db.Owner, migrate.Source{Package: "c", FS: files(map[string]string{
		"001_a.up.sql": "CREATE TABLE c_a (id bigint);",
		"002_b.up.sql": "CREATE TABLE c_b (id int);",
	})})
	require.ErrorIs(t, err, migrate.ErrChecksumMismatch)
	require.ErrorContains(t, err, "c/001_a.up.sql")
	require.Equal(t, []int{1}, recorded(t, db.Owner, "c"), "nothing after a changed file is applied")
}

func TestConcurrentAppliersOneAppliesTheOtherWaits(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	src := migrate.Source{Package: "items", FS: twoFiles}

	// Hold the advisory lock so both appliers must queue behind it.
	holder, err := db.Owner.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, "SELECT pg_advisory_lock($1)", migrate.LockKey(migrate.DefaultSchema))
	require.NoError(t, err)

	type result struct {
		applied []migrate.Migration
		err     error
	}
	results := make(chan result, 2)
	var started sync.WaitGroup
	for range 2 {
		started.Add(1)
		go func() {
			started.Done()
			applied, err := migrate.Apply(ctx, db.Owner, src)
			results <- result{applied, err}
		}()
	}
	started.Wait()
	waitForLockWaiters(t, db.Admin, db.Name, 2)
	require.Empty(t, results, "no applier may finish while the lock is held")

	_, err = holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrate.LockKey(migrate.DefaultSchema))
	require.NoError(t, err)

	var counts []int
	for range 2 {
		r := <-results
		require.NoError(t, r.err)
		counts = append(counts, len(r.applied))
	}
	require.ElementsMatch(t, []int{2, 0}, counts, "one applies both files, the other finds nothing to do")
	require.Equal(t, []int{1, 2}, recorded(t, db.Owner, "items"))
}

// waitForLockWaiters waits until n sessions of database wait for an
// advisory lock.
func waitForLockWaiters(t *testing.T, admin *pgxpool.Pool, database string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		require.NoError(t, admin.QueryRow(context.Background(), `
			SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = $1`, database).Scan(&waiting))
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d appliers are waiting for the lock", waiting, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCancelledWhileWaitingForTheLock(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	holder, err := db.Owner.Acquire(context.Background())
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(context.Background(), "SELECT pg_advisory_lock($1)", migrate.LockKey(migrate.DefaultSchema))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = migrate.Apply(ctx, db.Owner, migrate.Source{Package: "items", FS: twoFiles})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil, "got %v", err)
}

func TestBadFileNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"1.sql", "001.up.sql", "abc_x.up.sql", "000_zero.up.sql", "001_x.sql", "001_bad-name.up.sql"} {
		_, err := migrate.Load(migrate.Source{Package: "p", FS: files(map[string]string{name: "SELECT 1"})})
		require.ErrorIs(t, err, migrate.ErrBadFileName, name)
	}
	_, err := migrate.Load(migrate.Source{Package: "p", FS: files(map[string]string{"001_a.up.sql": "", "1_b.up.sql": ""})})
	require.ErrorIs(t, err, migrate.ErrBadFileName, "two files with one version")

	_, err = migrate.Load(migrate.Source{FS: twoFiles})
	require.ErrorIs(t, err, migrate.ErrBadSource)
}

func TestLoadOrdersByVersionNotByName(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Load(migrate.Source{Package: "p", FS: files(map[string]string{
		"10_ten.up.sql": "", "9_nine.up.sql": "", "100_hundred.up.sql": "",
	})})
	require.NoError(t, err)
	require.Equal(t, []int{9, 10, 100}, versions(ms))
	require.Len(t, ms[0].Checksum, 64)
}

func FuzzParseFileName(f *testing.F) {
	for _, seed := range []string{"001_create.up.sql", "2_x.down.sql", "", "_.up.sql", "999999999_a.up.sql", "0001_a.up.sql.bak"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		version, label, _, err := migrate.ParseFileName(name)
		if err != nil {
			require.ErrorIs(t, err, migrate.ErrBadFileName)
			return
		}
		require.Positive(t, version)
		require.NotEmpty(t, label)
	})
}
