// Package pgboot decides where PostgreSQL comes from, for the reference
// server and for the test helper alike, so both follow one order:
//
//  1. a URL the caller was given (DATABASE_URL for the server,
//     DEALIX_TEST_DATABASE_URL for the tests) → that server, used as is;
//  2. otherwise a reachable Docker engine → PostgreSQL in a container
//     started by testcontainers-go's postgres module, from the image the
//     caller names (default DefaultImage). A missing image is pulled only
//     when the caller allows it, so nothing reaches out to a registry by
//     surprise;
//  3. otherwise PostgreSQL's own binaries (initdb and postgres, found on
//     PATH or in /usr/lib/postgresql/<version>/bin, newest version first) →
//     a cluster of its own in a data directory, listening on 127.0.0.1
//     only;
//  4. otherwise an error wrapping ErrNoServer whose message names the three
//     options.
//
// A reachable engine that fails (a missing image, say) is reported as that
// failure and not passed over for the next option: the user chose Docker by
// running it, and should hear why it did not work.
//
// # The local cluster
//
// The cluster is for development and tests only. Its data directory holds
// the cluster (pgdata), a generated superuser password (password) that
// later starts reuse, the port of the last start (port, reused when free)
// and the server's log (postgres.log). A persistent directory keeps the data
// between runs; Options.Reset wipes it first; an empty Options.DataDir
// makes a temporary one that Close removes.
//
// PostgreSQL refuses to run as root. When the process runs as root, initdb
// and postgres run as the unprivileged "postgres" system user (or "nobody"
// when there is none), through the process credentials of exec.Cmd, no
// shell; the data directory is owned by that user and must be reachable by
// it, which rules out directories under root's home (mode 700):
// DefaultDataDir gives /var/lib/dealix/postgres to root.
//
// The server process is a child of the caller's process, started in its own
// process group (a terminal's Ctrl-C reaches the caller, which stops it in
// order), and the kernel stops it with SIGQUIT when the caller dies without
// closing it, so a killed test binary or server leaves no PostgreSQL behind.
package pgboot
