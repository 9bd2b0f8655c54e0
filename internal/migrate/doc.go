// Package migrate applies the library's embedded, versioned SQL migrations.
//
// Each package that owns tables embeds its files as
// migrations/NNN_name.up.sql and exports Migrate(ctx, pool), built on Apply:
//
//	//go:embed migrations/*.sql
//	var migrations embed.FS
//
//	func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
//		_, err := migrate.Apply(ctx, pool, migrate.Source{Package: "tenancy", FS: migrations})
//		return err
//	}
//
// Apply is safe to call on every start of every process:
//
//   - it takes a session advisory lock keyed by the schema, so concurrent
//     processes apply one after the other and the later ones find nothing
//     left to do;
//   - each file runs in its own transaction together with the row that
//     records it in <schema>.schema_migrations, so a file is applied
//     completely or not at all, and a failure names the file and line;
//   - applied files are recorded per package and version with a SHA-256
//     checksum; a recorded file whose content has since changed is refused
//     with ErrChecksumMismatch rather than silently skipped.
//
// The files are plain SQL with unqualified names. Apply runs them with the
// search_path set to the library schema (default "platform"), so a team that
// uses its own migration tool can run the same files with the same
// search_path instead.
package migrate
