// Package durable runs workflows that survive crashes: each step's result
// is checkpointed in PostgreSQL before the next step starts, and a run
// whose process died is resumed by another process from its last
// checkpoint.
//
// # Workflows and steps
//
// A workflow is a Go function registered under a name. It must be
// deterministic: apart from its input, it may only depend on the results
// of its steps, which are recorded by sequence number and replayed on
// resume.
//
//	rt, err := durable.New(durable.Config{App: appPool, System: systemPool})
//	onboard, err := durable.Register(rt, "onboard", func(ctx context.Context, in Signup) (string, error) {
//		account, err := durable.TxStep(ctx, "create-account", func(ctx context.Context, tx pgx.Tx) (string, error) {
//			// Runs in a transaction scoped to the run's tenant; the
//			// checkpoint commits in the same transaction: exactly once.
//			return createAccount(ctx, tx, in)
//		})
//		if err != nil {
//			return "", err
//		}
//		_, err = durable.Step(ctx, "welcome-mail", func(ctx context.Context) (bool, error) {
//			return true, mailer.Send(ctx, in.Email) // at least once; retried by policy
//		}, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5}))
//		if err != nil {
//			return "", err
//		}
//		if err := durable.Sleep(ctx, 24*time.Hour); err != nil {
//			return "", err // ErrSuspended: the run is parked, no worker held
//		}
//		approval, err := durable.WaitSignal[Decision](ctx, "approval", 72*time.Hour)
//		if err != nil {
//			return "", err // ErrSuspended while waiting, ErrSignalTimeout after 72h
//		}
//		return account + ":" + approval.By, nil
//	})
//	go rt.Run(ctx) // workers: claim, execute, resume; rt.Stop(ctx) to stop
//	run, err := onboard.Start(reqCtx, signup, durable.WithRunID("signup-"+signup.ID))
//	account, err := onboard.Result(reqCtx, run.ID)
//
// Start with WithRunID is idempotent. A step whose code changed under a run
// in flight (another name at the same sequence number) fails the run with
// a *DeterminismError. Inputs, step results, outputs and signal payloads
// travel as JSON; a value that does not encode or decode, or that jsonb
// refuses (a string holding a NUL character), fails the run with the
// reason (Start and Signal refuse it before storing anything). Error texts
// are stored with NUL and invalid UTF-8 replaced by U+FFFD.
//
// # Tenants
//
// Runs are tenant-scoped under row-level security. On the request path
// every call (Start, Get, Steps, Wait, Result, List, Cancel, Signal,
// Resume) takes the tenant from the context, where the authentication
// middleware or tenancy.WithTenant put it; without one it returns
// ErrNoTenant, the same value as tenancy.ErrNoTenant. System work across
// tenants names the tenant explicitly through the ...ForTenant variants
// (StartForTenant, GetForTenant, ...). The ...Tx variants (StartTx,
// SignalTx, CancelTx) run in the caller's transaction, so a run or signal
// commits atomically with the caller's own writes: the transaction must
// already be scoped to a tenant, it is never re-scoped, and a context
// naming another tenant is refused with a *TenantMismatchError.
//
// A workflow function and its steps get a context carrying the run's
// tenant, so what they call on the request path acts for that tenant.
//
// # Roles and recovery
//
// Request-path calls use the App pool (a role bound by RLS). The workers'
// claims and lease renewals, and the Sweeper, use the System pool
// (BYPASSRLS) across tenants, and each step's checkpoint and TxStep
// transaction run on the App pool scoped to the run's tenant again.
//
// A running run is owned through a lease (owner, expiry) renewed by a
// heartbeat and by any checkpoint that finds it older than a heartbeat. Runtimes claim runs whose lease expired
// with FOR UPDATE SKIP LOCKED; every claim bumps the run's attempt, and
// every write of an execution is fenced on the attempt it claimed, so a
// worker that lost its lease (paused, partitioned, cancelled) can never
// write again and two workers never both advance one run. Leases, wake-up
// times, signal deadlines and every recorded time are computed with the
// database's clock (now() in the statement), never the process's, so
// runtimes whose clocks differ neither steal each other's runs nor lose
// their own.
//
// # Stopping
//
// Stop is a soft stop: the runtime claims no more runs, the steps running
// at that moment finish and are checkpointed, and each run is then parked
// at its next step with its lease handed back, so another runtime resumes
// it at once. Stop is bounded by its context; StopAndCancel (or cancelling
// Run's context) is the hard stop for when that runs out: it cancels the
// running steps' contexts, records nothing more for them and hands their
// leases back. A claim query is never cancelled half-way: it runs detached
// from the stop, under its own timeout, and runs it claimed after a stop
// began are handed straight back.
//
// # Throughput
//
// Every checkpoint is committed before its step returns. The checkpoints,
// starts and outcomes of the runs executing at the same moment in one
// runtime are committed together (group commit: one round trip, one
// tenant scope per tenant and one WAL flush per batch, no timer waiting
// for a batch to fill: a new batch's leader only lets the goroutines
// ready to run go first, so that the runs of a batch that just committed
// come back as one batch), so throughput grows with concurrency instead
// of stopping at the server's commit rate. Within a batch, the step
// records, claimed starts and outcomes of one tenant go together as one
// statement over arrays (one row per run) rather than one statement per
// run or per kind. A checkpoint
// changes no indexed column of its run (the lease is renewed at most once
// per Heartbeat), so PostgreSQL updates the run's row in place. One
// member's failure never becomes another's: values are checked before they
// are queued, and when PostgreSQL still refuses a statement (which rolls
// back the whole batch) every member is committed again on its own, so only
// the run whose value was refused fails, with the reason. A run started
// through a runtime whose workers have a free slot executes there at once,
// and Wait (and Result) on such a run is woken by its end and returns the
// run as that end stored it, without polling or reading it again.
//
// # Signals
//
// Signal and SignalTx send a named payload to a run by id; a run waiting
// for that name becomes claimable at once, and signals sent before the wait
// are kept for it. The approvals package's decision hook can call SignalTx
// inside the decision's transaction.
//
// # Retention
//
// A Sweeper (on the System pool) deletes finished runs, with their
// checkpoints and signals, once they are older than its retention; Run
// loops, SweepOnce makes one pass. It deletes in batches of
// SweeperConfig.BatchSize runs, each its own short transaction; a backlog
// of expired runs is worked off batch after batch, competing with the
// workers for the database meanwhile. SweeperConfig.BatchPause (default
// 100ms) waits between two batches, trading sweep time for the workers'
// throughput.
//
// # Telemetry
//
// Each execution of a run gets a span ("durable.run <workflow>") with a
// child span per step ("durable.step <name>"), from the global
// OpenTelemetry tracer provider unless Config.TracerProvider is set. Their
// attributes (run id, tenant, attempt; step kind, sequence number,
// replayed) are set once a span is known to be recorded, so a sampler
// decides on the span's name alone and an unrecorded span costs no
// attributes.
//
// # Tables
//
// Migrate creates durable_runs, durable_steps and durable_signals in schema
// platform; they need SELECT, INSERT, UPDATE and DELETE for both roles.
package durable
