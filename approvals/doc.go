// Package approvals holds risky actions for a human decision: a policy
// says which actions need approval, a gate stores them as pending requests
// in PostgreSQL, admins approve or reject them (the first decision wins),
// and an approved action is continued through a hook that runs inside the
// deciding transaction, so it is carried out at least once and never lost,
// while a rejected or expired one never runs.
//
// # Policy
//
// Policy.Evaluate(tenant, action) is pure. By default (DefaultPolicy) an action needs
// approval when it reaches more than 50 recipients, has a risk score of 0.7
// or more, or is critical; rules can be set per action kind, per tenant and
// per tenant and kind. The Evaluation lists the reasons.
//
// # Gate
//
//	svc, err := approvals.New(appPool, approvals.Config{
//		// The continuation: written in the same transaction as the approval.
//		OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
//			return queue.EnqueueTx(ctx, tx, "outbound", d.Payload)
//		},
//	})
//	res, err := svc.Request(ctx, approvals.Action{
//		Kind: "outbound.email", Recipients: 120, Payload: payload,
//	})
//	if res.Allowed {
//		send(payload) // no approval needed
//	} else {
//		// res.Request is pending; OnApprove carries the action out once approved.
//	}
//
// New takes a copy of Config.Policy, maps included, so a caller changing
// its policy afterwards neither changes nor races the service's.
//
// # Tenant
//
// On the request path the tenant comes from the context (put there by the
// tenancy authentication middleware or tenancy.WithTenant): Request,
// Decide, Get, List and AuditTrail. System work across tenants (a worker,
// an admin tool) names it through the …ForTenant variants:
// RequestForTenant, DecideForTenant, GetForTenant, ListForTenant and
// AuditTrailForTenant. Without a tenant every call fails with ErrNoTenant,
// the same value as tenancy.ErrNoTenant. The actor (Action.Actor,
// DecideInput.Decider) defaults to the subject of the context's principal.
//
// RequestTx and DecideTx work in the caller's transaction, which must
// already be scoped to a tenant (tenancy.InTx); they never re-scope it, and
// a context naming another tenant is refused with a
// *tenancy.TenantMismatchError (errors.Is(err, ErrTenantMismatch)) before
// anything is written.
//
// Asking twice for the same action (same Action.IdempotencyKey, or same
// fingerprint without a key) returns the same request.
//
// # Deciding
//
// Service.Decide (and DecideForTenant, DecideTx) records a decision with
// one conditional UPDATE that matches only a pending, unexpired request:
// the first decision wins. Repeating the same decision succeeds
// (Decision.Replayed); the other decision fails with a *ConflictError
// carrying the recorded one (errors.Is(err, ErrAlreadyDecided)). A
// requester cannot approve their own request unless
// Config.AllowSelfApproval is set, and an expired request cannot be
// decided (ErrExpired).
//
// The hook (Config.OnApprove or OnReject) runs in the decision's
// transaction, with a context carrying the request's tenant, so what it
// writes (an outbox row, a queue job) commits exactly with the decision.
// When it fails, the decision and the hook's writes are rolled back to a
// savepoint and the request stays pending, for this or another decider to
// try again.
//
// Every attempt that reaches the database is written to the audit trail
// (Service.AuditTrail): accepted, replayed, refused, and failed hooks
// (AuditHookFailed, with the hook's error). Input refused by validation
// (ErrInvalidDecision, ErrInvalidID, a missing tenant or actor) is not. Decide and DecideForTenant commit the audit row in their
// own transaction, a failed hook's included; DecideTx writes it in the
// caller's transaction, so it is kept when the caller commits.
//
// # Expiry
//
// A request expires Config.TTL after it was made. Creation, expiry and
// decision times are the database's clock (now() in the statement), never
// the process's, so instances whose clocks differ agree on which requests
// are still decidable. A Sweeper, running as the system role (BYPASSRLS)
// across tenants, marks overdue requests expired:
//
//	sweeper, err := approvals.NewSweeper(systemPool, approvals.SweeperConfig{})
//	go sweeper.Run(ctx)         // or sweeper.SweepOnce(ctx) from a scheduler
//
// # Admin API
//
// NewAdminHandler serves list, get, approve, reject and audit trail as
// JSON, restricted to principals holding the admin scope (default
// "approvals:admin"), with RFC 9457 problem+json errors; mount it behind
// the tenancy authentication middleware:
//
//	admin, err := approvals.NewAdminHandler(svc, approvals.AdminConfig{})
//	mux.Handle("/admin/approvals/", http.StripPrefix("/admin/approvals", authn(admin)))
//
// # Storage
//
// Migrate creates platform.approvals_requests and platform.approvals_audit,
// both tenant-scoped under row-level security: serve requests through the
// application role, which sees one tenant per transaction. New, NewSweeper
// and ObservePending take a DB, the methods of *pgxpool.Pool they call.
package approvals
