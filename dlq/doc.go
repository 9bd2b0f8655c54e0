// Package dlq is a PostgreSQL work queue with retries, backoff, a
// dead-letter queue, re-drive and per-queue stats.
//
// Jobs live in one table, platform.dlq_jobs, created by Migrate. Every job
// belongs to a tenant and the table is under row-level security, so the app
// role can only enqueue and see its own tenant's jobs; workers run as the
// system role (BYPASSRLS) across tenants and hand each handler a context
// carrying the job's tenant, so the job's own effects run in a
// tenant-scoped transaction again (tenancy.InTx).
//
// # Enqueue
//
// On the request path the tenant comes from the context (the
// authentication middleware or tenancy.WithTenant put it there): Enqueue
// stores the job in one statement scoped to it, and refuses a context
// without a tenant with ErrNoTenant. EnqueueTx writes in the caller's
// transaction, for the tenant that transaction is already scoped to, so
// the job exists only if the caller's writes commit (the outbox pattern);
// it never re-scopes the transaction, and a context naming another tenant
// is refused with a *TenantMismatchError. System work names the tenant
// explicitly with EnqueueForTenant. EnqueueMany, EnqueueManyTx and
// EnqueueManyForTenant store many jobs in one statement. A DedupKey makes
// one job of many enqueues. Values PostgreSQL would refuse (NUL in a
// payload or a name) are refused with ErrInvalidJob before any reaches it.
//
//	app, _ := dlq.NewClient(appPool, dlq.Config{})
//	err := tenancy.InTx(ctx, appPool, func(tx pgx.Tx) error {
//		// … the caller's own writes …
//		_, err := app.EnqueueTx(ctx, tx, dlq.JobParams{
//			Queue: "webhooks", Kind: "deal.won", Payload: event, DedupKey: event.ID,
//		})
//		return err
//	})
//
// # Work
//
// A client started with queues fetches available jobs with FOR UPDATE SKIP
// LOCKED, in batches up to each queue's free concurrency, leases them, and
// runs their handlers. A LISTEN connection wakes a queue as soon as a job is
// committed to it (a client's own enqueues share one notification per
// Config.FetchCooldown, the least pause between a queue's fetches anyway);
// polling covers scheduled jobs, retries and a lost connection.
//
//	worker, _ := dlq.NewClient(systemPool, dlq.Config{
//		Queues: map[string]dlq.QueueConfig{
//			"webhooks": {Concurrency: 20, Timeout: 30 * time.Second, Handler: dlq.Typed(deliver)},
//		},
//	})
//	_ = worker.Start(ctx)
//	defer worker.Stop(shutdownCtx)
//
// A handler returns nil (completed), an error (retried after
// Config.Backoff; after the job's last attempt it moves to the dead-letter
// state with every error kept), Discard(err) (dead at once) or Snooze(d)
// (run again later, attempt not counted). A panic is recovered and counts
// as a failure; the attempt's context ends at the queue's Timeout. Error
// texts are stored cleaned (NUL and invalid UTF-8 replaced, cut to 32 KiB),
// so a failure is always recorded with its own reason.
//
// # Time
//
// Every time other instances rely on comes from the database's clock
// (now() in the statement): a job's default run time, its lease, a retry's
// or a snooze's due time, the rescue of expired leases, retention and the
// stats' ages. Instances whose clocks differ therefore agree on which
// leases are live and which jobs are due.
//
// # Delivery, fencing and stopping
//
// Delivery is at least once. A job is leased for its queue's Timeout plus
// Config.LeaseGrace; if its worker dies the lease expires and the rescuer
// (in every started client) makes the job available again, recording the
// lost attempt. Every claim of a job increments its claim count, which is
// never reset — not by a re-drive either — and fences every outcome write:
// a worker that lost its lease cannot complete, fail or release a later
// claim of the job, even one running under the same attempt number.
// Handlers should therefore be idempotent.
//
// A fetch is never cancelled once sent: the server may already have
// committed the claim. Stop is the soft stop: no new fetch, the jobs in
// hand (a fetch in flight included) finish and their outcomes are
// recorded; when its context ends first it turns into the hard stop.
// StopAndCancel is the hard stop: running handlers' contexts are cancelled
// and the jobs whose handlers then fail are released — available at once,
// the attempt not counted — for another worker. Cancelling Start's context
// is StopAndCancel.
//
// # Dead letters, stats and retention
//
// Redrive, RedriveWhere, DiscardJob and Purge act on dead jobs (each with a
// …Tx variant); Stats reports each queue's available, running, scheduled,
// retrying and dead jobs and the age of its oldest available job. Without a
// tenant in the context they act on every tenant's jobs the client's role
// can see (all of them through the system role); with one, on that
// tenant's only, in statements that name it (tenant_id = $n), as the
// worker's outcome writes name each job's tenant. StatsHandler serves the stats as JSON and the actions as
// POST, with errors as problem+json. A Sweeper deletes completed and
// discarded jobs after their retention (and dead ones after
// Config.DeadRetention, when set); started clients run one. It deletes in
// batches, and Config.CleanupBatchPause (SweeperConfig.BatchPause, 100ms
// by default, NoBatchPause for none) spaces them, so that a large backlog
// is deleted beside the work rather than in its way.
//
// # Errors
//
// ErrNoTenant, ErrInvalidTenant, ErrInvalidConfig and ErrTenantMismatch
// are the library's shared values: errors.Is(err, tenancy.ErrNoTenant)
// matches dlq.ErrNoTenant.
package dlq
