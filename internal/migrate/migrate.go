package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultSchema is the schema that holds the library's tables and the
// migrations table when a Source does not name another.
const DefaultSchema = "platform"

// DefaultDir is the directory inside Source.FS that holds the files.
const DefaultDir = "migrations"

// TableName is the migrations table inside the schema.
const TableName = "schema_migrations"

var (
	// ErrBadFileName is returned for a .sql file in the migrations
	// directory whose name is not NNN_name.up.sql (or .down.sql, which is
	// ignored), or for two files with one version.
	ErrBadFileName = errors.New("migrate: bad migration file name")
	// ErrChecksumMismatch is returned when a file recorded as applied has
	// different content now. Applied migrations must never be edited; add
	// a new file instead.
	ErrChecksumMismatch = errors.New("migrate: applied migration file has changed")
	// ErrBadSource is returned for a Source without a package name or files.
	ErrBadSource = errors.New("migrate: bad source")
)

// Source is one package's set of migrations.
type Source struct {
	// Package names the owner of the files in the migrations table, for
	// example "tenancy". Required.
	Package string
	// FS holds the files, usually an embed.FS. Required.
	FS fs.FS
	// Dir is the directory inside FS. Default: DefaultDir ("migrations").
	Dir string
	// Schema is the library schema: the migrations table lives there and
	// the files run with it as search_path. Default: DefaultSchema.
	Schema string
}

// Migration is one parsed migration file.
type Migration struct {
	Package  string
	Version  int
	Name     string
	File     string // the file's base name, e.g. 001_create_runs.up.sql
	SQL      string
	Checksum string // hex SHA-256 of the file's bytes
}

// Error reports a migration file that failed to apply; the transaction that
// ran it was rolled back, so none of its statements took effect.
type Error struct {
	Package string
	File    string
	Line    int // 1-based line of the failing statement when the server says; 0 otherwise
	Err     error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("migrate: %s/%s line %d: %v", e.Package, e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("migrate: %s/%s: %v", e.Package, e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var fileNamePattern = regexp.MustCompile(`^([0-9]{1,9})_([A-Za-z0-9_]+)\.(up|down)\.sql$`)

// ParseFileName splits a migration file name into its version and name. It
// reports up=false for a .down.sql file, which Apply ignores.
func ParseFileName(name string) (version int, label string, up bool, err error) {
	m := fileNamePattern.FindStringSubmatch(name)
	if m == nil {
		return 0, "", false, fmt.Errorf("%w: %q (want NNN_name.up.sql)", ErrBadFileName, name)
	}
	version, err = strconv.Atoi(m[1])
	if err != nil || version == 0 {
		return 0, "", false, fmt.Errorf("%w: %q (versions start at 1)", ErrBadFileName, name)
	}
	return version, m[2], m[3] == "up", nil
}

// Load reads and orders the up migrations of src.
func Load(src Source) ([]Migration, error) {
	src, err := src.withDefaults()
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(src.FS, src.Dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", src.Package, err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, entry := range entries {
		if entry.IsDir() || !strings.HasSuffix(entry.Name(), ".sql") {
			continue
		}
		version, label, up, err := ParseFileName(entry.Name())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.Package, err)
		}
		if !up {
			continue
		}
		if other, dup := seen[version]; dup {
			return nil, fmt.Errorf("%w: %s: %s and %s share version %d", ErrBadFileName, src.Package, other, entry.Name(), version)
		}
		seen[version] = entry.Name()
		body, err := fs.ReadFile(src.FS, path.Join(src.Dir, entry.Name()))
		if err != nil {
			return nil, fmt.Errorf("migrate: %s: %w", src.Package, err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{
			Package: src.Package, Version: version, Name: label, File: entry.Name(),
			SQL: string(body), Checksum: hex.EncodeToString(sum[:]),
		})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

func (s Source) withDefaults() (Source, error) {
	if s.Package == "" || s.FS == nil {
		return s, fmt.Errorf("%w: Package and FS are required", ErrBadSource)
	}
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	if s.Schema == "" {
		s.Schema = DefaultSchema
	}
	return s, nil
}

// LockKey is the advisory lock key Apply holds while it works on schema.
// Operators can see it in pg_locks (locktype advisory, objid the low 32 bits).
func LockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("dealix/platform migrate " + schema))
	return int64(h.Sum64())
}

// Apply applies the migrations of src that are not yet recorded, in version
// order, each in its own transaction, and returns the ones it applied. It
// holds the schema's advisory lock on one connection of pool throughout, so
// concurrent callers queue behind it.
func Apply(ctx context.Context, pool *pgxpool.Pool, src Source) ([]Migration, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	return ApplyConn(ctx, conn.Conn(), src)
}

// ApplyConn is Apply on a single connection the caller owns.
func ApplyConn(ctx context.Context, conn *pgx.Conn, src Source) (applied []Migration, err error) {
	migrations, err := Load(src)
	if err != nil {
		return nil, err
	}
	src, _ = src.withDefaults()
	key := LockKey(src.Schema)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if the connection is gone the
		// server has released the session lock already.
		if _, unlockErr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key); unlockErr != nil && err == nil {
			err = fmt.Errorf("migrate: release advisory lock: %w", unlockErr)
		}
	}()

	if err := ensureTable(ctx, conn, src.Schema); err != nil {
		return nil, err
	}
	recorded, err := recordedChecksums(ctx, conn, src)
	if err != nil {
		return nil, err
	}
	for _, m := range migrations {
		sum, done := recorded[m.Version]
		if done {
			if sum != m.Checksum {
				return applied, fmt.Errorf("%w: %s/%s", ErrChecksumMismatch, m.Package, m.File)
			}
			continue
		}
		if err := applyOne(ctx, conn, src.Schema, m); err != nil {
			return applied, err
		}
		applied = append(applied, m)
	}
	return applied, nil
}

func ensureTable(ctx context.Context, conn *pgx.Conn, schema string) error {
	ident := pgx.Identifier{schema}.Sanitize()
	table := pgx.Identifier{schema, TableName}.Sanitize()
	sql := "CREATE SCHEMA IF NOT EXISTS " + ident + ";\n" +
		"CREATE TABLE IF NOT EXISTS " + table + ` (
	package    text        NOT NULL,
	version    integer     NOT NULL,
	name       text        NOT NULL,
	checksum   text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (package, version)
)`
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("migrate: create %s: %w", table, err)
	}
	return nil
}

func recordedChecksums(ctx context.Context, conn *pgx.Conn, src Source) (map[int]string, error) {
	table := pgx.Identifier{src.Schema, TableName}.Sanitize()
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM "+table+" WHERE package = $1", src.Package)
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", table, err)
	}
	out := map[int]string{}
	var version int
	var sum string
	_, err = pgx.ForEachRow(rows, []any{&version, &sum}, func() error {
		out[version] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", table, err)
	}
	return out, nil
}

func applyOne(ctx context.Context, conn *pgx.Conn, schema string, m Migration) error {
	fail := func(err error) error {
		return &Error{Package: m.Package, File: m.File, Line: errorLine(m.SQL, err), Err: err}
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	if _, err := tx.Exec(ctx, "SELECT set_config('search_path', $1, true)", pgx.Identifier{schema}.Sanitize()); err != nil {
		return fail(err)
	}
	// No arguments: pgx sends the file with the simple protocol, which
	// accepts several statements in one string.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fail(err)
	}
	table := pgx.Identifier{schema, TableName}.Sanitize()
	if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (package, version, name, checksum) VALUES ($1, $2, $3, $4)",
		m.Package, m.Version, m.Name, m.Checksum); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}

// errorLine turns the character position a server error points at into a
// 1-based line number of the file.
func errorLine(sql string, err error) int {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Position <= 0 {
		return 0
	}
	runes := []rune(sql)
	pos := min(int(pgErr.Position)-1, len(runes))
	return 1 + strings.Count(string(runes[:pos]), "\n")
}
