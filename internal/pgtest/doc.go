// Package pgtest gives the library's tests a real, isolated PostgreSQL
// database per test.
//
// A package's tests share one server per test binary, set up by Main from
// TestMain, and ask for a fresh database in each test:
//
//	func TestMain(m *testing.M) {
//		pgtest.Main(m, pgtest.WithMigrations(tenancy.Migrate))
//	}
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		db := pgtest.New(t)
//		// db.App serves requests: NOSUPERUSER, NOBYPASSRLS, owns nothing.
//		// db.System runs background work: BYPASSRLS.
//		// db.Owner owns the schema and ran the migrations.
//	}
//
// The server is started by the first database request (New, ForExample or
// AdminURL), not by Main: tests, fuzz workers and Examples that need no
// database run on a machine with no server at all. Where it comes from is
// decided by internal/pgboot, the same order the reference server follows:
//
//   - When DEALIX_TEST_DATABASE_URL names a server (a superuser URL, for
//     example postgres://postgres:secret@127.0.0.1:5432/postgres), that
//     server is used and nothing is started.
//   - Otherwise, when a Docker engine is reachable, PostgreSQL is started
//     with testcontainers-go's postgres module from the image named by
//     DEALIX_TEST_POSTGRES_IMAGE (default DefaultImage), and terminated when
//     the test binary ends. A missing image is pulled only with
//     DEALIX_TEST_PULL_IMAGE=true; where no image registry is reachable,
//     scripts/build-postgres-image.sh builds a compatible image from Debian
//     packages.
//   - Otherwise PostgreSQL's own binaries (initdb and postgres on PATH or in
//     /usr/lib/postgresql/<version>/bin, or in DEALIX_TEST_POSTGRES_BIN)
//     run a temporary cluster on 127.0.0.1, removed when the binary ends.
//     As root, the cluster runs as the postgres system user.
//   - When none works, the test that asked fails with one message naming
//     the three options: tests never hang and are never skipped for it.
//
// Child processes: a test that runs this binary again (a crash test) gives
// the child the parent's server with DEALIX_TEST_DATABASE_URL=AdminURL()
// and, preferably, the URL of a database it created with New, so the
// parent owns and drops it. A child that creates databases anyway names
// them under the parent's template (the parent passes its name in the
// environment), and the parent drops them all when it stops, so a child
// killed before its clean-up leaves nothing behind on a shared server.
//
// Isolation: the first request creates the three roles of the library's
// design on the server, then a template database migrated by the owner role
// with the functions given to WithMigrations, with privileges granted to the
// app and system roles. New clones the template (CREATE DATABASE … TEMPLATE), so each
// test has its own migrated database, tests can run with t.Parallel, and the
// clone is dropped when the test ends.
package pgtest
