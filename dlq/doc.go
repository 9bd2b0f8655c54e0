// Package dlq is a PostgreSQL work queue with retries, backoff, a
// dead-letter queue, re-drive and per-queue stats.
//
// Jobs live in one table, platform.dlq_jobs, created by Migrate. Every job
// belongs to a tenant and the table is under row-level security, so the app
// role can only enqueue and see its own tenant's jobs; workers run as the
// system role (BYPASSRLS) across tenants and hand each job's tenant to its
// handler, which runs the job's effects in a tenant-scoped transaction
// again (InTenantTx).
//
// # Enqueue
//
// Enqueue opens its own tenant-scoped transaction; EnqueueTx writes in the
// caller's, so the job exists only if the caller's writes commit (the
// outbox pattern). EnqueueMany and EnqueueManyTx store many jobs in one
// statement. A DedupKey makes one job of many enqueues.
//
//	app, _ := dlq.NewClient(appPool, dlq.Config{})
//	err := tenancy.InTenantTx(ctx, appPool, tenant, func(tx pgx.Tx) error {
//		// … the caller's own writes …
//		_, err := app.EnqueueTx(ctx, tx, dlq.JobParams{
//			Tenant: tenant, Queue: "webhooks", Kind: "deal.won",
//			Payload: event, DedupKey: event.ID,
//		})
//		return err
//	})
//
// # Work
//
// A client started with queues fetches available jobs with FOR UPDATE SKIP
// LOCKED, in batches up to each queue's free concurrency, leases them, and
// runs their handlers. A LISTEN connection wakes a queue as soon as a job is
// committed to it; polling covers scheduled jobs, retries and a lost
// connection.
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
// as a failure; the attempt's context ends at the queue's Timeout.
//
// Delivery is at least once. A job is leased for its queue's Timeout plus
// Config.LeaseGrace; if its worker dies the lease expires and the rescuer
// (in every started client) makes the job available again, recording the
// lost attempt. Outcomes are fenced by the attempt number, so a worker that
// lost its lease cannot overwrite a later attempt. Handlers should
// therefore be idempotent. Stop finishes in-flight jobs, or at its
// deadline cancels them and releases them for another worker.
//
// # Dead letters and stats
//
// Redrive, RedriveWhere, DiscardJob and Purge act on dead jobs (each with a
// …Tx variant); Stats reports each queue's available, running, scheduled,
// retrying and dead jobs and the age of its oldest available job.
// StatsHandler serves the stats as JSON and the actions as POST, with
// errors as problem+json. Cleanup (run periodically by started clients)
// deletes completed and discarded jobs after Config.Retention.
package dlq
