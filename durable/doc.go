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
//	go rt.Run(ctx) // workers: claim, execute, resume
//	run, err := onboard.Start(ctx, tenantID, signup, durable.WithRunID("signup-"+signup.ID))
//
// Start with WithRunID is idempotent. A step whose code changed under a run
// in flight (another name at the same sequence number) fails the run with
// a *DeterminismError. Inputs, step results, outputs and signal payloads
// travel as JSON; a value that does not encode or decode fails the run with
// the reason.
//
// # Roles, tenants and recovery
//
// Runs are tenant-scoped under row-level security. Starting runs, signals
// and operator calls (Get, List, Cancel, Resume) use the App pool (a role
// bound by RLS) in a transaction scoped to the tenant; the ...Tx variants
// take the caller's tenant-scoped transaction, so a run or signal commits
// atomically with the caller's own writes. The workers' claim loop, lease
// renewal and DeleteFinished use the System pool (BYPASSRLS) across
// tenants, and each step's checkpoint and TxStep transaction run on the App
// pool scoped to the run's tenant again.
//
// A running run is owned through a lease (owner, expiry) renewed by every
// checkpoint and by a heartbeat. Runtimes claim runs whose lease expired
// with FOR UPDATE SKIP LOCKED; every claim bumps the run's attempt, and
// every write of an execution is fenced on the attempt it claimed, so a
// worker that lost its lease (paused, partitioned, cancelled) can never
// write again and two workers never both advance one run.
//
// # Throughput
//
// Every checkpoint is committed before its step returns. The checkpoints,
// starts and outcomes of the runs executing at the same moment in one
// runtime are committed together (group commit: one round trip and one WAL
// flush per batch, no waiting for a batch to fill), so throughput grows
// with concurrency instead of stopping at the server's commit rate. A run
// started through a runtime whose workers have a free slot executes there
// at once, and Wait on such a run is woken by its end instead of polling.
//
// # Signals
//
// Signal and SignalTx send a named payload to a run by id; a run waiting
// for that name becomes claimable at once, and signals sent before the wait
// are kept for it. The approvals package's decision hook can call SignalTx
// inside the decision's transaction.
//
// # Telemetry
//
// Each execution of a run gets a span ("durable.run <workflow>") with a
// child span per step ("durable.step <name>"), from the global
// OpenTelemetry tracer provider unless Config.TracerProvider is set.
//
// # Tables
//
// Migrate creates durable_runs, durable_steps and durable_signals in schema
// platform; they need SELECT, INSERT, UPDATE and DELETE for both roles.
package durable
