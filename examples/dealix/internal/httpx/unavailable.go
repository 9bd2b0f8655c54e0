package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// RetryAfterSeconds is the Retry-After (in seconds) of a 503 answered
// because the database could not be reached: a restarting PostgreSQL is
// usually back within a few seconds, and a client retrying sooner only
// adds to the queue in front of the pool.
const RetryAfterSeconds = "1"

// Unavailable reports whether err means the database could not serve the
// request for now — not that the request or the server's code is wrong —
// so the request may be retried as it is: a connection that could not be
// made or was lost (a restart, a failover, a network error), PostgreSQL
// refusing work while it shuts down or starts (class 57P0x, too many
// connections, class 08), a pool closed or not handing out a connection
// before the deadline. Fail answers these 503 with Retry-After instead
// of 500.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02",               // crash_shutdown
			pgErr.Code == "57P03",               // cannot_connect_now
			pgErr.Code == "57014",               // query_canceled (statement_timeout, a cancel request)
			pgErr.Code == "53300",               // too_many_connections
			pgErr.Code == "55P03",               // lock_not_available (lock_timeout)
			strings.HasPrefix(pgErr.Code, "08"): // connection_exception
			return true
		}
		// Any other answer from PostgreSQL is about the statement: a bug
		// or a constraint the handler should have turned into a 4xx.
		return false
	}
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	// A deadline reached while waiting for a connection or an answer:
	// the pool is exhausted or the database too slow for now.
	if errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr)
}
