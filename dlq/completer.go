package dlq

import (
	"context"
	"sync"
)

// completer records successful attempts in batches: under load many jobs
// finish while one UPDATE runs, and the next UPDATE takes them all. A
// success not yet recorded when the process dies is run again after its
// lease expires (at least once).
type completer struct {
	r    *runner
	in   chan *Job
	done sync.WaitGroup
}

const completeBatch = 1000

func newCompleter(r *runner) *completer {
	c := &completer{r: r, in: make(chan *Job, completeBatch)}
	c.done.Add(1)
	go c.loop()
	return c
}

func (c *completer) add(job *Job) { c.in <- job }

// close records what is pending and returns; no add may follow.
func (c *completer) close() {
	close(c.in)
	c.done.Wait()
}

func (c *completer) loop() {
	defer c.done.Done()
	for job := range c.in {
		ids, attempts := []int64{job.ID}, []int32{int32(job.Attempt)}
	drain:
		for len(ids) < completeBatch {
			select {
			case job, ok := <-c.in:
				if !ok {
					break drain
				}
				ids, attempts = append(ids, job.ID), append(attempts, int32(job.Attempt))
			default:
				break drain
			}
		}
		c.r.persist(func(ctx context.Context) error { return c.r.c.complete(ctx, ids, attempts) })
	}
}

const completeSQL = `
UPDATE platform.dlq_jobs j
SET state = 'completed', finalized_at = $3, lease_until = NULL
FROM unnest($1::bigint[], $2::int[]) AS d(id, attempt)
WHERE j.id = d.id AND j.attempt = d.attempt AND j.state = 'running'`

func (c *Client) complete(ctx context.Context, ids []int64, attempts []int32) error {
	_, err := c.pool.Exec(ctx, completeSQL, ids, attempts, c.cfg.Now())
	return err
}
