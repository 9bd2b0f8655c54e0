package durable

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// groupCommit commits the checkpoints of concurrently executing runs
// together: while one batch is in flight, the checkpoints that arrive
// queue up and go as the next batch, one round trip and one commit (one
// WAL flush) for all of them. A lone checkpoint goes at once, so nothing
// waits for a batch to fill. Each caller returns only after the batch
// holding its checkpoint committed.
type groupCommit struct {
	mu       sync.Mutex
	queue    []*commitRequest
	flushing bool // a batch is in flight
}

// commitRequest is one statement run in its tenant's scope.
type commitRequest struct {
	tenant string
	sql    string
	args   []any
	tag    pgconn.CommandTag
	err    error
	done   chan bool // receives true to lead the next batch, false when committed
}

// exec runs sql in tenant's scope in the next batch and returns its
// command tag once the batch committed.
func (g *groupCommit) exec(ctx context.Context, rt *Runtime, tenant, sql string, args ...any) (pgconn.CommandTag, error) {
	req := &commitRequest{tenant: tenant, sql: sql, args: args, done: make(chan bool, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	if g.flushing {
		g.mu.Unlock()
		if lead := <-req.done; !lead {
			return req.tag, req.err
		}
	} else {
		g.flushing = true
		g.mu.Unlock()
	}
	g.lead(ctx, rt)
	return req.tag, req.err
}

// lead flushes the queue (which holds the leader's own request) and hands
// the lead to the first request that queued meanwhile.
func (g *groupCommit) lead(ctx context.Context, rt *Runtime) {
	g.mu.Lock()
	batch := g.queue
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
		next = g.queue[0]
	} else {
		g.flushing = false
	}
	g.mu.Unlock()
	for _, req := range batch {
		req.done <- false
	}
	if next != nil {
		next.done <- true
	}
}

// flush sends batch as one implicit transaction: each statement after
// setting its tenant. If any statement fails the transaction rolls back as
// a whole, so every request gets the error.
func (rt *Runtime) flush(ctx context.Context, batch []*commitRequest) {
	b := &pgx.Batch{}
	for _, req := range batch {
		b.Queue(setTenantSQL, req.tenant)
		b.Queue(req.sql, req.args...)
	}
	br := rt.cfg.App.SendBatch(ctx, b)
	var err error
	for _, req := range batch {
		if _, err = br.Exec(); err != nil {
			break
		}
		if req.tag, err = br.Exec(); err != nil {
			break
		}
	}
	if closeErr := br.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		err = fmt.Errorf("durable: commit checkpoints: %w", err)
		for _, req := range batch {
			req.tag, req.err = pgconn.CommandTag{}, err
		}
	}
}
