// Package approvals holds risky actions for a human decision: a policy
// says which actions need approval, a gate stores them as pending requests
// in PostgreSQL, admins approve or reject them (the first decision wins),
// and an approved action is continued through a hook that runs inside the
// deciding transaction, so it is carried out at least once and never lost,
// while a rejected or expired one never runs.
//
// # Policy
//
// Policy.Evaluate is pure. By default (DefaultPolicy) an action needs
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
// The tenant and the actor come from the context (tenancy.TenantFrom and
// tenancy.PrincipalFrom) unless the Action names them. Asking twice for the
// same action (same Action.IdempotencyKey, or same fingerprint without a
// key) returns the same request. RequestTx stores the request in the
// caller's transaction.
//
// # Deciding
//
// Service.Decide (and DecideTx) records a decision with one conditional
// UPDATE that matches only a pending, unexpired request: the first decision
// wins. Repeating the same decision succeeds (Decision.Replayed); the other
// decision fails with a *ConflictError carrying the recorded one
// (errors.Is(err, ErrAlreadyDecided)). A requester cannot approve their own
// request unless Config.AllowSelfApproval is set, and an expired request
// cannot be decided (ErrExpired). Every attempt, accepted or refused, is
// written to the audit trail (Service.AuditTrail) in the attempt's
// transaction. When the OnApprove hook fails, the decision rolls back and
// the request stays pending.
//
// # Expiry
//
// A request expires Config.TTL after it was made. A Sweeper, running as the
// system role (BYPASSRLS) across tenants, marks overdue requests expired:
//
//	sweeper, err := approvals.NewSweeper(systemPool, approvals.SweeperConfig{})
//	go sweeper.Run(ctx)
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
// application role, which sees one tenant per transaction.
package approvals
