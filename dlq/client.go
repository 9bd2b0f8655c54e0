package dlq

import (
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
)

// DB is the database handle a Client works through: *pgxpool.Pool and
// *pgx.Conn satisfy it. It is the same interface in every package of the
// library.
type DB = dbx.DB

// poolConfiger is what a client that works queues needs beyond DB: the
// pool's configuration, to open the connection it LISTENs on (a LISTEN
// must stay on one session, so it cannot borrow a pooled connection for a
// statement at a time). *pgxpool.Pool has it.
type poolConfiger interface {
	Config() *pgxpool.Config
}

// Client enqueues jobs, works the queues of its Config once started, and
// administers the dead-letter queue.
//
// Give it the pool of the role the work calls for: the app role (bound by
// row-level security) for a client that enqueues on behalf of requests —
// each enqueue is scoped to the tenant of its context or transaction — and
// the system role (BYPASSRLS) for a client that works queues across
// tenants, rescues, sweeps, re-drives and reports stats.
type Client struct {
	db       DB
	cfg      Config
	notifier notifier
	txNotify txNotifyLimiter
	// maxFetchedID is the highest job id this client has fetched: it
	// picks the fetch statement (see fetchSQL).
	maxFetchedID atomic.Int64

	mu     sync.Mutex
	runner *runner
}

// NewClient returns a client over db, or an error wrapping
// ErrInvalidConfig when cfg cannot work. A client configured with Queues
// and without Config.DisableListen opens its LISTEN connection with the
// configuration of db, which must then be a *pgxpool.Pool (anything with a
// Config() *pgxpool.Config method); any DB will do otherwise. Pass a pool
// or a connection, not a transaction: Enqueue scopes its own statements to
// a tenant, which inside a caller's transaction would re-scope it — write in
// a transaction with the …Tx methods instead.
func NewClient(db DB, cfg Config) (*Client, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(cfg.Queues) > 0 && !cfg.DisableListen {
		if _, ok := db.(poolConfiger); !ok {
			return nil, errs.Config("dlq", "a client that works queues LISTENs on a connection opened from db's Config() *pgxpool.Config: pass a *pgxpool.Pool or set DisableListen")
		}
	}
	c := &Client{db: db, cfg: cfg}
	c.notifier.c = c
	return c, nil
}
