package durable

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
// in flight opens a batch and goes without waiting for it to fill: its
// leader only lets the goroutines that are ready to run go first (one
// yield of the processor), so that the members of a batch that just
// committed, which all become ready at once and come back with their next
// checkpoints together, join one batch instead of each opening its own.
// Each caller returns only after the batch holding its checkpoint
// committed.
//
// The members of a batch may belong to different runs and tenants, so one
// member's failure must never become another's: values are checked before
// they are queued, and when PostgreSQL still refuses a statement (which
// rolls the batch's implicit transaction back as a whole) every member is
// sent again on its own and gets its own outcome.
type groupCommit struct {
	mu       sync.Mutex
	queue    []*commitRequest // waiting for a batch to form or end
	inFlight int              // batches being formed or sent
	// forming is set while a batch's leader yields before collecting the
	// queue: requests arriving meanwhile queue for its batch rather than
	// open another.
	forming bool
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
	// merge, when set, lets the request go together with others of its
	// kind and tenant as one statement over arrays (see mergeKind).
	merge *mergeable
	done  chan bool        // receives true to lead the next batch, false when committed
	batch []*commitRequest // the batch to lead, set before true is sent on done
}

func (g *groupCommit) do(ctx context.Context, rt *Runtime, req *commitRequest) (int64, error) {
	req.done = make(chan bool, 1)
	g.mu.Lock()
	if g.inFlight < maxInFlight && !g.forming {
		g.inFlight++
		g.forming = true
		g.mu.Unlock()
		// Without a timer: the goroutines already ready to run go first,
		// and those among them that commit queue for this batch.
		runtime.Gosched()
		g.mu.Lock()
		g.forming = false
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
	var sent []sentItem
	for i := 0; i < len(reqs); {
		j := i + 1
		for j < len(reqs) && reqs[j].tenant == reqs[i].tenant {
			j++
		}
		b.Queue(rls.SetTenantSQL, reqs[i].tenant)
		sent = append(sent, sentItem{})
		sent = rt.queueTenant(b, sent, reqs[i:j])
		i = j
	}
	br := rt.cfg.App.SendBatch(ctx, b)
	var err error
	for _, item := range sent {
		switch {
		case item.req != nil:
			item.req.rows, err = read(br, item.req)
		case item.merged != nil:
			err = readMerged(br, item.merged)
		default:
			_, err = br.Exec()
		}
		if err != nil {
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

// sentItem is one statement of a batch: a set_config (neither field
// set), one request's statement, or the merged statement of several.
type sentItem struct {
	req    *commitRequest
	merged []*commitRequest
}

// queueTenant queues the statements of one tenant's requests: those that
// merge go as one statement over arrays when there are two or more of
// them, each for a different run; the others one by one.
func (rt *Runtime) queueTenant(b *pgx.Batch, sent []sentItem, reqs []*commitRequest) []sentItem {
	var members []*commitRequest
	for _, req := range reqs {
		if req.merge != nil {
			members = append(members, req)
		}
	}
	// The merged statement tells its members apart by run.
	merge := len(members) >= 2 && distinctRuns(members)
	for _, req := range reqs {
		if req.merge == nil || !merge {
			b.Queue(req.sql, req.args...)
			sent = append(sent, sentItem{req: req})
		}
	}
	if merge {
		sql, args := rt.mergedStatement(members)
		b.Queue(sql, args...)
		sent = append(sent, sentItem{merged: members})
	}
	return sent
}

func distinctRuns(members []*commitRequest) bool {
	seen := make(map[string]bool, len(members))
	for _, req := range members {
		if seen[req.merge.run] {
			return false
		}
		seen[req.merge.run] = true
	}
	return true
}

// readMerged reads a merged statement's rows, one (run, time) per member
// that it wrote, and sets each member's rows.
func readMerged(br pgx.BatchResults, members []*commitRequest) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	byRun := make(map[string]*commitRequest, len(members))
	for _, req := range members {
		req.rows = 0
		byRun[req.merge.run] = req
	}
	var run string
	var at time.Time
	for rows.Next() {
		if err := rows.Scan(&run, &at); err != nil {
			rows.Close()
			return err
		}
		if req := byRun[run]; req != nil {
			req.rows = 1
			if req.merge.at != nil {
				*req.merge.at = at
			}
		}
	}
	rows.Close()
	return rows.Err()
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
