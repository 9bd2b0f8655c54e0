package dlq

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DBTX is what the ...Tx methods need: pgx.Tx satisfies it (and so do
// *pgxpool.Pool and *pgx.Conn, for callers managing their own scope).
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Client enqueues jobs, works the queues of its Config once started, and
// administers the dead-letter queue.
//
// Give it the pool of the role the work calls for: the app role (bound by
// row-level security) for a client that enqueues on behalf of requests —
// Enqueue scopes each transaction to the job's tenant — and the system role
// (BYPASSRLS) for a client that works queues across tenants, rescues,
// cleans up, re-drives and reports stats.
type Client struct {
	pool     *pgxpool.Pool
	cfg      Config
	notifier notifier

	mu     sync.Mutex
	runner *runner
}

// NewClient returns a client over pool, or an error wrapping
// ErrInvalidConfig when cfg cannot work.
func NewClient(pool *pgxpool.Pool, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Client{pool: pool, cfg: cfg}
	c.notifier.c = c
	return c, nil
}
