package durable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dealix/platform/internal/rls"
)

// groupCommit commits the checkpoints of concurrently executing runs
// together: while maxInFlight batches are in flight, the checkpoints that
// arrive queue up and go as the next batch, one round trip and one commit
// (one WAL flush) for all of them. A checkpoint arriving while fewer are
// in flight goes at once, so nothing waits for a batch to fill. Each caller returns only after the batch
// holding its checkpoint committed.
//
// The members of a batch may belong to different runs and tenants, so one
// member's failure must never become another's: values are checked before
// they are queued, and when PostgreSQL still refuses a statement (which
// rolls the batch's implicit transaction back as a whole) every member is
// sent again on its own and gets its own outcome.
type groupCommit struct {
	mu       sync.Mutex
	queue    []*commitRequest // waiting for a batch to end; empty while fewer than maxInFlight are in flight
	inFlight int              // batches being sent
}

// maxInFlight is how many batches may be in flight at once. With two, the
// server executes one batch while the next is being sent and the
// previous one's members go on, instead of idling between batches.
const maxInFlight = 2

// commitRequest is one statement run in its tenant's scope.
type commitRequest struct {
	tenant string
	sql    string
	args   []any
	scan   func(rowScanner) error // when set, the statement returns at most one row, scanned by it
	rows   int64                  // rows affected (or returned, with scan)
	err    error
	done   chan bool        // receives true to lead the next batch, false when committed
	batch  []*commitRequest // the batch to lead, set before true is sent on done
}

// exec runs sql in tenant's scope in the next batch and returns the number
// of rows it affected once the batch committed.
func (g *groupCommit) exec(ctx context.Context, rt *Runtime, tenant, sql string, args ...any) (int64, error) {
	return g.do(ctx, rt, &commitRequest{tenant: tenant, sql: sql, args: args})
}

// queryRow runs sql, which returns at most one row, in tenant's scope in
// the next batch, scans the row with scan and returns 1, or 0 without a
// row.
func (g *groupCommit) queryRow(ctx context.Context, rt *Runtime, tenant string, scan func(rowScanner) error, sql string, args ...any) (int64, error) {
	return g.do(ctx, rt, &commitRequest{tenant: tenant, sql: sql, args: args, scan: scan})
}

func (g *groupCommit) do(ctx context.Context, rt *Runtime, req *commitRequest) (int64, error) {
	req.done = make(chan bool, 1)
	g.mu.Lock()
	if g.inFlight < maxInFlight {
		g.inFlight++
		g.mu.Unlock()
		req.batch = []*commitRequest{req}
	} else {
		g.queue = append(g.queue, req)
		g.mu.Unlock()
		if lead := <-req.done; !lead {
			return req.rows, req.err
		}
	}
	g.lead(ctx, rt, req.batch)
	return req.rows, req.err
}

// lead flushes batch (which holds the leader's own request), together
// with whatever queued since it was handed over, and then hands the
// requests queued meanwhile to the first of them to lead as the next
// batch.
func (g *groupCommit) lead(ctx context.Context, rt *Runtime, batch []*commitRequest) {
	g.mu.Lock()
	batch = append(batch, g.queue...)
	g.queue = nil
	g.mu.Unlock()

	// The batch carries other runs' checkpoints: it must not fail because
	// the leader's own run is being stopped.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	rt.flush(flushCtx, batch)

	g.mu.Lock()
	var next *commitRequest
	if len(g.queue) > 0 {
		// Taken here, under the lock, so that no two ending batches hand
		// the same requests over.
		next = g.queue[0]
		next.batch = g.queue
		g.queue = nil
	} else {
		g.inFlight--
	}
	g.mu.Unlock()
	for _, req := range batch {
		req.done <- false
	}
	if next != nil {
		next.done <- true
	}
}

// flush commits batch and sets every request's outcome.
func (rt *Runtime) flush(ctx context.Context, batch []*commitRequest) {
	err := rt.send(ctx, batch)
	if err == nil {
		return
	}
	var pgErr *pgconn.PgError
	if len(batch) > 1 && errors.As(err, &pgErr) {
		// The server refused a statement, so the implicit transaction
		// rolled back as a whole and no member's write took effect: each
		// goes again alone, and only the one refused fails.
		for _, req := range batch {
			req.err = rt.send(ctx, []*commitRequest{req})
		}
		return
	}
	// The connection failed: the outcome is unknown for every member,
	// which stops each run at this checkpoint; a fenced write sent again
	// could not tell its own earlier success from a lost lease.
	for _, req := range batch {
		req.rows, req.err = 0, err
	}
}

// send sends reqs as one implicit transaction, the statements of each
// tenant after setting it once, and records each one's rows. On error
// every request of reqs gets it.
func (rt *Runtime) send(ctx context.Context, reqs []*commitRequest) error {
	if len(reqs) > 1 {
		// The requests of one tenant go together, so that one set_config
		// serves them all; the members are independent, so their order
		// does not matter.
		reqs = slices.Clone(reqs)
		slices.SortStableFunc(reqs, func(a, b *commitRequest) int { return strings.Compare(a.tenant, b.tenant) })
	}
	b := &pgx.Batch{}
	for i, req := range reqs {
		if i == 0 || req.tenant != reqs[i-1].tenant {
			b.Queue(rls.SetTenantSQL, req.tenant)
		}
		b.Queue(req.sql, req.args...)
	}
	br := rt.cfg.App.SendBatch(ctx, b)
	var err error
	for i, req := range reqs {
		if i == 0 || req.tenant != reqs[i-1].tenant {
			if _, err = br.Exec(); err != nil {
				break
			}
		}
		if req.rows, err = read(br, req); err != nil {
			break
		}
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		err = fmt.Errorf("durable: commit checkpoints: %w", err)
		for _, req := range reqs {
			req.rows, req.err = 0, err
		}
	}
	return err
}

func read(br pgx.BatchResults, req *commitRequest) (int64, error) {
	if req.scan == nil {
		tag, err := br.Exec()
		return tag.RowsAffected(), err
	}
	switch err := req.scan(br.QueryRow()); {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return 1, nil
}
