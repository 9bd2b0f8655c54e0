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

// close records what is pending and returns. The runner calls it only
// after every job has returned, so no add can follow.
func (c *completer) close() {
	close(c.in)
	c.done.Wait()
}

func (c *completer) loop() {
	defer c.done.Done()
	for job := range c.in {
		ids, claims := []int64{job.ID}, []int64{job.claims}
	drain:
		for len(ids) < completeBatch {
			select {
			case job, ok := <-c.in:
				if !ok {
					break drain
				}
				ids, claims = append(ids, job.ID), append(claims, job.claims)
			default:
				break drain
			}
		}
		c.r.persist(func(ctx context.Context) error { return c.r.c.complete(ctx, ids, claims) })
	}
}

// completeSQL records successes, fenced by each job's claim count like
// failSQL.
const completeSQL = `
UPDATE platform.dlq_jobs j
SET state = 'completed', finalized_at = now(), lease_until = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, claims)
WHERE j.id = d.id AND j.claims = d.claims AND j.state = 'running'`

func (c *Client) complete(ctx context.Context, ids, claims []int64) error {
	_, err := c.db.Exec(ctx, completeSQL, ids, claims)
	return err
}
