package httpx_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealix/platform/examples/dealix/internal/httpx"
)

// Database outages are 503 with Retry-After; a statement's own failure
// (here a unique violation that escaped its handler) stays a 500.
func TestFailMapsDatabaseOutagesTo503(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Severity: "FATAL"}, http.StatusServiceUnavailable},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, http.StatusServiceUnavailable},
		{"cannot connect now", fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "57P03"}), http.StatusServiceUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, http.StatusServiceUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, http.StatusServiceUnavailable},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusServiceUnavailable},
		{"conn closed", fmt.Errorf("commit: %w", pgconn.ErrConnClosed), http.StatusServiceUnavailable},
		{"acquire deadline", fmt.Errorf("begin: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{"lost mid-answer", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable},
		{"unique violation", &pgconn.PgError{Code: "23505"}, http.StatusInternalServerError},
		{"a bug", errors.New("nil map"), http.StatusInternalServerError},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpx.Fail(rec, httptest.NewRequest(http.MethodGet, "/x", nil), log, c.err)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d", rec.Code, c.want)
			}
			if got := rec.Header().Get("Retry-After"); (c.want == http.StatusServiceUnavailable) != (got == "1") {
				t.Fatalf("Retry-After %q for status %d", got, rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
}
