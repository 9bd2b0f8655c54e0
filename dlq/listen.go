package dlq

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// notifyChannel is the channel enqueues and re-drives notify, with the
// queue's name as payload.
const notifyChannel = "dlq_jobs"

// listen holds a connection of its own (outside the pool: a LISTEN must
// stay on one session) and wakes a queue's loop when jobs are inserted into
// it. When the connection is lost it reconnects with backoff; meanwhile the
// loops poll.
func (r *runner) listen() {
	ctx := r.loopsCtx
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, func() { delay = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		r.c.cfg.Logger.Warn("dlq: listen connection lost; reconnecting", "err", err, "after", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

func (r *runner) listenOnce(ctx context.Context, connected func()) error {
	// NewClient checked that a client with queues and LISTEN has a pool.
	cc := r.c.cfg.ListenConfig
	if cc == nil {
		cc = r.c.db.(poolConfiger).Config().ConnConfig
	}
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	connected()
	// Jobs inserted while no one listened woke nobody.
	r.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		r.wakeQueue(n.Payload)
	}
}
