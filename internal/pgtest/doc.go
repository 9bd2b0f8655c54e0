// Package pgtest gives the library's tests a real, isolated PostgreSQL
// database per test.
//
// A package's tests start one server per test binary from TestMain and ask
// for a fresh database in each test:
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
// Where the server comes from:
//
//   - When DEALIX_TEST_DATABASE_URL names a server (a superuser URL, for
//     example postgres://postgres:secret@127.0.0.1:5432/postgres), that
//     server is used and no container is started.
//   - Otherwise PostgreSQL is started with testcontainers-go's postgres
//     module from the image named by DEALIX_TEST_POSTGRES_IMAGE (default
//     DefaultImage), and terminated when the test binary ends. Where no image
//     registry is reachable, scripts/build-postgres-image.sh builds a
//     compatible image from Debian packages.
//   - When neither works, Main prints one message saying so and the binary
//     exits with status 1: the tests never hang and are never skipped.
//
// Isolation: Main creates the three roles of the library's design on the
// server, then a template database migrated by the owner role with the
// functions given to WithMigrations, with privileges granted to the app and
// system roles. New clones the template (CREATE DATABASE … TEMPLATE), so each
// test has its own migrated database, tests can run with t.Parallel, and the
// clone is dropped when the test ends.
package pgtest
