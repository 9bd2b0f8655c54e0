package launchgates

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/gates"
)

// RestoreDrill is the backup-restore drill: pg_dump the source database
// (custom format), create a fresh database beside it, pg_restore the dump
// into it, and compare the row count of every table. It closes only when
// every table of the source exists in the restore with the same number of
// rows. The fresh database is dropped afterwards.
type RestoreDrill struct {
	// SourceURL is a postgres:// URL of the database to back up, as a role
	// that reads every row (a superuser or a BYPASSRLS role) and may
	// create databases.
	SourceURL string
	// PGBin is the directory of pg_dump and pg_restore. Default: PATH,
	// then /usr/lib/postgresql/<newest>/bin. They must be at least the
	// server's major version.
	PGBin string
	// AfterRestore, when set, runs between the restore and the comparison
	// with the fresh database's URL: a drill of the drill (drop a table and
	// see it fail).
	AfterRestore func(ctx context.Context, restoredURL string) error
}

// Run runs the drill under ctx.
func (d RestoreDrill) Run(ctx context.Context) gates.Result {
	evidence, err := d.run(ctx)
	if err != nil {
		return open("restore drill: %v", err)
	}
	return closed("%s", evidence)
}

func (d RestoreDrill) run(ctx context.Context) (string, error) {
	if d.SourceURL == "" {
		return "", errors.New("no database URL configured")
	}
	src, err := url.Parse(d.SourceURL)
	if err != nil || (src.Scheme != "postgres" && src.Scheme != "postgresql") || strings.Trim(src.Path, "/") == "" {
		return "", errors.New("the database URL must be postgres://…/dbname")
	}
	dumpBin, restoreBin := d.bin("pg_dump"), d.bin("pg_restore")
	source, err := pgx.Connect(ctx, d.SourceURL)
	if err != nil {
		return "", fmt.Errorf("connect to the source: %w", err)
	}
	defer source.Close(context.WithoutCancel(ctx))

	dir, err := os.MkdirTemp("", "dealix-restore-drill-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	dump := filepath.Join(dir, "dealix.dump")
	start := time.Now()
	before, err := dumpSnapshot(ctx, source, dumpBin, d.SourceURL, dump)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(dump)
	if err != nil {
		return "", err
	}
	dumped := time.Since(start)

	name := "dealix_restore_drill_" + randomHex(6)
	if _, err := source.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create the fresh database: %w", err)
	}
	defer func() {
		// WITH (FORCE) ends a restore still connected after a timeout.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = source.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}()
	target := *src
	target.Path = "/" + name
	restoreStart := time.Now()
	if out, err := exec.CommandContext(ctx, restoreBin, "--exit-on-error", "--dbname="+target.String(), dump).CombinedOutput(); err != nil {
		return "", fmt.Errorf("pg_restore: %v: %s", err, tail(out))
	}
	restored := time.Since(restoreStart)
	if d.AfterRestore != nil {
		if err := d.AfterRestore(ctx, target.String()); err != nil {
			return "", fmt.Errorf("after restore: %w", err)
		}
	}
	conn, err := pgx.Connect(ctx, target.String())
	if err != nil {
		return "", fmt.Errorf("connect to the restore: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	after, err := rowCounts(ctx, conn)
	if err != nil {
		return "", fmt.Errorf("count the restore's rows: %w", err)
	}
	var problems []string
	var rows int64
	for _, table := range sortedKeys(before) {
		n, ok := after[table]
		switch {
		case !ok:
			problems = append(problems, table+" missing")
		case n != before[table]:
			problems = append(problems, fmt.Sprintf("%s has %d rows, the source %d", table, n, before[table]))
		}
		rows += before[table]
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("the restore differs: %s", strings.Join(problems, "; "))
	}
	return fmt.Sprintf("pg_dump %d KiB in %s, pg_restore in %s into a fresh database; %d tables, %d rows, every row count equal",
		(info.Size()+1023)/1024, dumped.Round(time.Millisecond), restored.Round(time.Millisecond), len(before), rows), nil
}

// dumpSnapshot counts the source's rows and dumps it from one snapshot:
// a live server keeps writing while the drill runs, so the counts and the
// dump must see the same moment. The snapshot is exported by a read-only
// repeatable-read transaction held open until pg_dump (--snapshot) ends.
func dumpSnapshot(ctx context.Context, source *pgx.Conn, dumpBin, sourceURL, file string) (map[string]int64, error) {
	tx, err := source.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("open the snapshot: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, fmt.Errorf("export the snapshot: %w", err)
	}
	before, err := rowCounts(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("count the source's rows: %w", err)
	}
	if out, err := exec.CommandContext(ctx, dumpBin, "--format=custom", "--snapshot="+snapshot, "--file="+file, "--dbname="+sourceURL).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pg_dump: %v: %s", err, tail(out))
	}
	return before, nil
}

// bin finds a PostgreSQL client program: in PGBin when set, else on PATH,
// else in Debian's versioned directories (newest first), where a server
// installation puts it without a link on PATH.
func (d RestoreDrill) bin(name string) string {
	if d.PGBin != "" {
		return filepath.Join(d.PGBin, name)
	}
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	return name
}

// versionOf reads the major version of /usr/lib/postgresql/<v>/bin.
func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// rowCounts counts the rows of every ordinary and partitioned table
// outside the system schemas, by schema-qualified name.
func rowCounts(ctx context.Context, conn interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (map[string]int64, error) {
	rows, err := conn.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-3):], " | ")
}

// once shares one run of a check between the gates that cite it (T8 and
// R2 are one drill).
type once struct {
	check gates.Check
	mu    sync.Mutex
	done  chan struct{}
	res   gates.Result
}

func share(c gates.Check) *once { return &once{check: c} }

// Run runs the check the first time and hands every caller its result.
func (o *once) Run(ctx context.Context) gates.Result {
	o.mu.Lock()
	first := o.done == nil
	if first {
		o.done = make(chan struct{})
	}
	done := o.done
	o.mu.Unlock()
	if first {
		o.res = o.check.Run(ctx)
		close(done)
	}
	select {
	case <-done:
		return o.res
	case <-ctx.Done():
		return open("waiting for the shared check: %v", ctx.Err())
	}
}
