package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgtext"
	"github.com/dealix/platform/internal/rls"
)

// MaxCommentLength is the longest decision comment accepted, in bytes.
const MaxCommentLength = 4000

// DecideInput is one attempt to approve or reject a request. The tenant
// is not part of it: it comes from the context (Decide), the tenant
// argument (DecideForTenant) or the transaction (DecideTx).
type DecideInput struct {
	// RequestID is the request's id (a UUID). Required.
	RequestID string
	// Decision is StatusApproved or StatusRejected. Required.
	Decision Status
	// Decider identifies who decides. Default: the subject of
	// tenancy.PrincipalFrom(ctx).
	Decider string
	// Comment explains the decision. Optional, at most MaxCommentLength
	// bytes.
	Comment string
}

// AuditResult is the outcome of one attempt, as written in the audit trail.
type AuditResult string

const (
	// AuditAccepted: the attempt made the decision.
	AuditAccepted AuditResult = "accepted"
	// AuditReplayed: the same decision was already recorded; nothing changed.
	AuditReplayed AuditResult = "replayed"
	// AuditConflict: the other decision was already recorded; refused.
	AuditConflict AuditResult = "conflict"
	// AuditExpired: the request had expired; refused (or, for the action
	// "expire", the request was expired).
	AuditExpired AuditResult = "expired"
	// AuditSelfApproval: the requester tried to approve; refused.
	AuditSelfApproval AuditResult = "self_approval"
	// AuditNotFound: no such request in the tenant; refused.
	AuditNotFound AuditResult = "not_found"
	// AuditHookFailed: the decision was made but its hook (OnApprove or
	// OnReject) failed, so the decision and the hook's writes were rolled
	// back and the request stays pending. AuditEntry.Error holds the
	// hook's error.
	AuditHookFailed AuditResult = "hook_failed"
)

// MaxAuditErrorLength is the longest hook error text kept in the audit
// trail, in bytes; a longer one is cut.
const MaxAuditErrorLength = 2000

// Decide approves or rejects a request of the tenant of ctx
// (tenancy.TenantFrom; ErrNoTenant without one), in a transaction of its
// own. The first decision wins: it is recorded by one conditional UPDATE
// that only matches a pending, unexpired request. A later attempt with the
// same decision succeeds with the recorded Decision (Replayed set, hooks
// not run again); with the other decision it fails with a *ConflictError
// carrying the recorded one. ErrExpired, ErrSelfApproval and ErrNotFound
// refuse the others. Every attempt, accepted or refused, is written to the
// audit trail and committed.
//
// An accepted decision runs Config.OnApprove or Config.OnReject in the same
// transaction. A hook error rolls back the decision and the hook's writes
// (the request stays pending), is recorded in the audit trail
// (AuditHookFailed) and is returned wrapped.
func (s *Service) Decide(ctx context.Context, in DecideInput) (Decision, error) {
	tenant, err := contextTenant(ctx)
	if err != nil {
		return Decision{}, err
	}
	return s.decideInOwnTx(ctx, tenant, in)
}

// DecideForTenant is Decide for system work that names the tenant
// explicitly rather than through ctx; the hooks get a ctx carrying that
// tenant. An empty tenant is ErrNoTenant, a malformed one ErrInvalidTenant.
func (s *Service) DecideForTenant(ctx context.Context, tenant string, in DecideInput) (Decision, error) {
	tenant, err := explicitTenant(tenant)
	if err != nil {
		return Decision{}, err
	}
	return s.decideInOwnTx(ctx, tenant, in)
}

// recordTimeout bounds the statements that keep a failed attempt's audit
// row after its hook failed: they run even when ctx was cancelled (a
// cancelled context is a common reason for a hook to fail).
const recordTimeout = 10 * time.Second

func (s *Service) decideInOwnTx(ctx context.Context, tenant string, in DecideInput) (Decision, error) {
	in, err := s.checkDecideInput(ctx, in)
	if err != nil {
		return Decision{}, err
	}
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Decision{}, fmt.Errorf("approvals: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op once committed
	out, err := s.attempt(ctx, tx, tenant, in, true)
	if err != nil {
		return Decision{}, err
	}
	commitCtx := ctx
	if out.result == AuditHookFailed {
		var cancel context.CancelFunc
		commitCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
	}
	if err := tx.Commit(commitCtx); err != nil {
		return Decision{}, errors.Join(out.refusal, fmt.Errorf("approvals: commit decision: %w", err))
	}
	s.logAttempt(ctx, tenant, in, out)
	return out.decision, out.refusal
}

// DecideTx is Decide inside the caller's transaction, in the tenant tx is
// scoped to: the decision, its audit row and the hook's writes commit or
// roll back with the caller's. tx must already be scoped to a tenant; it
// is never re-scoped, and a context naming another tenant is refused with
// a *tenancy.TenantMismatchError (ErrTenantMismatch) before anything is
// written. An unscoped tx is ErrNoTenant.
//
// The decision and its hook run in a savepoint: a hook error undoes only
// them, writes the failed attempt's audit row in tx and leaves tx usable;
// that row is kept when the caller commits. tx should run at READ
// COMMITTED (PostgreSQL's default): under REPEATABLE READ or SERIALIZABLE
// a concurrent decision surfaces as a serialization failure instead of the
// recorded decision.
func (s *Service) DecideTx(ctx context.Context, tx pgx.Tx, in DecideInput) (Decision, error) {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return Decision{}, err
	}
	in, err = s.checkDecideInput(ctx, in)
	if err != nil {
		return Decision{}, err
	}
	out, err := s.attempt(ctx, tx, tenant, in, false)
	if err != nil {
		return Decision{}, err
	}
	s.logAttempt(ctx, tenant, in, out)
	return out.decision, out.refusal
}

func (s *Service) checkDecideInput(ctx context.Context, in DecideInput) (DecideInput, error) {
	decider, err := actorFrom(ctx, in.Decider)
	if err != nil {
		return in, err
	}
	in.Decider = decider
	if in.RequestID, err = parseRequestID(in.RequestID); err != nil {
		return in, err
	}
	switch {
	case in.Decision != StatusApproved && in.Decision != StatusRejected:
		return in, fmt.Errorf("%w: decision must be %q or %q", ErrInvalidDecision, StatusApproved, StatusRejected)
	case len(in.Comment) > MaxCommentLength || pgtext.CheckText(in.Comment) != nil:
		return in, fmt.Errorf("%w: comment must be at most %d bytes of UTF-8 without NUL", ErrInvalidDecision, MaxCommentLength)
	case len(in.Decider) > MaxActorLength || pgtext.CheckText(in.Decider) != nil:
		return in, fmt.Errorf("%w: decider must be at most %d bytes of UTF-8 without NUL", ErrInvalidDecision, MaxActorLength)
	}
	return in, nil
}

// decideSQL is the whole decision, with its audit row: it only matches a
// pending request that has not expired by the database's clock and,
// unless self-approval is allowed, is not being approved by its requester.
// Concurrent attempts serialize on the row; the losers re-check the WHERE
// clause against the winner's committed row and match nothing (and write
// no audit row here).
const decideSQL = `
WITH decided AS (
    UPDATE platform.approvals_requests
    SET status = $3, decided_by = $4, decided_at = now(), decision_comment = $5
    WHERE tenant_id = $1 AND id = $2 AND status = 'pending' AND expires_at > now()
      AND ($6::boolean OR $3 <> 'approved' OR requested_by <> $4)
    RETURNING *),
audited AS (
    INSERT INTO platform.approvals_audit
        (tenant_id, request_id, actor, action, result, status_after, comment, recorded_at)
    SELECT tenant_id, id, $4, $7, 'accepted', status, $5, now() FROM decided)
SELECT ` + requestColumns + ` FROM decided`

const selectRequestSQL = `SELECT ` + requestColumns + ` FROM platform.approvals_requests
WHERE tenant_id = $1 AND id = $2`

// explainSQL reads a request the decision did not match, and whether its
// time has passed; now() is the same as in decideSQL, in one transaction.
const explainSQL = `SELECT ` + requestColumns + `, expires_at <= now() FROM platform.approvals_requests
WHERE tenant_id = $1 AND id = $2`

const insertAuditSQL = `
INSERT INTO platform.approvals_audit
    (tenant_id, request_id, actor, action, result, status_after, comment, error, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())`

// The savepoint around a decision whose hook may fail, so that the
// failure undoes the decision and the hook's writes but not the audit row
// recording the attempt. Raw SQL rather than a nested pgx.Tx, so that in
// Decide it travels in the same round trip as the decision.
const (
	savepointSQL        = "SAVEPOINT approvals_decision"
	releaseSavepointSQL = "RELEASE SAVEPOINT approvals_decision"
	// undoSavepointSQL is two statements, sent without arguments in
	// PostgreSQL's simple protocol: one round trip.
	undoSavepointSQL = "ROLLBACK TO SAVEPOINT approvals_decision; RELEASE SAVEPOINT approvals_decision"
)

// outcome is the outcome of one decide attempt: what it returns and what
// the audit trail records.
type outcome struct {
	decision    Decision
	result      AuditResult
	statusAfter Status
	refusal     error
}

// attempt runs one decide attempt in tx, scoping it to tenant first when
// scope is set (tx is then the service's own). A refusal, a failed hook
// included, is returned in the outcome, not as err: the transaction still
// commits, so the audit row stays. err means tx must be rolled back.
func (s *Service) attempt(ctx context.Context, tx pgx.Tx, tenant string, in DecideInput, scope bool) (outcome, error) {
	hook := s.hookFor(in.Decision)
	out, err := s.attemptWith(ctx, tx, tenant, in, scope, hook)
	if err != nil && hook != nil && !scope {
		// Leave the caller's transaction usable, as it was before the
		// call; the error is the answer either way.
		_, _ = tx.Exec(context.WithoutCancel(ctx), undoSavepointSQL)
	}
	return out, err
}

func (s *Service) attemptWith(ctx context.Context, tx pgx.Tx, tenant string, in DecideInput, scope bool, hook Hook) (outcome, error) {
	b := &pgx.Batch{}
	if scope {
		b.Queue(rls.SetTenantSQL, tenant)
	}
	if hook != nil {
		b.Queue(savepointSQL)
	}
	b.Queue(decideSQL, tenant, in.RequestID, string(in.Decision), in.Decider, in.Comment,
		s.cfg.AllowSelfApproval, auditAction(in.Decision))
	req, err := sendDecision(ctx, tx, b)
	switch {
	case err == nil:
		d, _ := req.decision()
		if hook == nil {
			return outcome{decision: d, result: AuditAccepted, statusAfter: d.Status}, nil
		}
		if hookErr := hook(hookContext(ctx, tenant), tx, d); hookErr != nil {
			return s.recordHookFailure(ctx, tx, tenant, in, d, hookErr)
		}
		if !scope { // the caller's transaction: leave no savepoint behind
			if _, err := tx.Exec(ctx, releaseSavepointSQL); err != nil {
				return outcome{}, fmt.Errorf("approvals: release savepoint: %w", err)
			}
		}
		return outcome{decision: d, result: AuditAccepted, statusAfter: d.Status}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return outcome{}, fmt.Errorf("approvals: decide: %w", err)
	}
	out, err := s.explainRefusal(ctx, tx, tenant, in)
	if err != nil {
		return outcome{}, err
	}
	b = &pgx.Batch{}
	b.Queue(insertAuditSQL, tenant, in.RequestID, in.Decider, auditAction(in.Decision),
		string(out.result), string(out.statusAfter), in.Comment, "")
	if hook != nil && !scope {
		b.Queue(releaseSavepointSQL)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return outcome{}, fmt.Errorf("approvals: write audit: %w", err)
	}
	return out, nil
}

// sendDecision sends b, whose last statement is decideSQL, and reads the
// decided request (pgx.ErrNoRows when the decision matched nothing).
func sendDecision(ctx context.Context, tx pgx.Tx, b *pgx.Batch) (Request, error) {
	br := tx.SendBatch(ctx, b)
	for range b.Len() - 1 {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return Request{}, err
		}
	}
	req, err := scanRequest(br.QueryRow())
	if closeErr := br.Close(); err == nil && closeErr != nil {
		return Request{}, closeErr
	}
	return req, err
}

// recordHookFailure undoes the decision and the hook's writes (back to the
// savepoint) and records the failed attempt in their place, so the audit
// row outlives the rollback. The request is pending again: another
// decider, waiting on its row, may now decide it.
func (s *Service) recordHookFailure(ctx context.Context, tx pgx.Tx, tenant string, in DecideInput, d Decision, hookErr error) (outcome, error) {
	hookErr = fmt.Errorf("approvals: %s hook for request %s: %w", d.Status, d.RequestID, hookErr)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	// First on its own: the hook may have left the transaction aborted, and
	// until the rollback nothing else (not even a prepare) is accepted.
	if _, err := tx.Exec(rctx, undoSavepointSQL); err != nil {
		return outcome{}, errors.Join(hookErr, fmt.Errorf("approvals: undo the decision: %w", err))
	}
	_, err := tx.Exec(rctx, insertAuditSQL, tenant, in.RequestID, in.Decider, auditAction(in.Decision),
		string(AuditHookFailed), string(StatusPending), in.Comment, pgtext.Clean(hookErr.Error(), MaxAuditErrorLength))
	if err != nil {
		return outcome{}, errors.Join(hookErr, fmt.Errorf("approvals: record the failed attempt: %w", err))
	}
	return outcome{result: AuditHookFailed, statusAfter: StatusPending, refusal: hookErr}, nil
}

// explainRefusal reads the request the UPDATE did not match and says why.
// Under READ COMMITTED this statement sees any decision committed by a
// concurrent winner.
func (s *Service) explainRefusal(ctx context.Context, tx pgx.Tx, tenant string, in DecideInput) (outcome, error) {
	var due bool
	req, err := scanRequest(tx.QueryRow(ctx, explainSQL, tenant, in.RequestID), &due)
	if errors.Is(err, pgx.ErrNoRows) {
		return outcome{result: AuditNotFound, refusal: ErrNotFound}, nil
	}
	if err != nil {
		return outcome{}, fmt.Errorf("approvals: read request: %w", err)
	}
	if recorded, decided := req.decision(); decided {
		if recorded.Status == in.Decision {
			recorded.Replayed = true
			return outcome{decision: recorded, result: AuditReplayed, statusAfter: recorded.Status}, nil
		}
		return outcome{result: AuditConflict, statusAfter: recorded.Status,
			refusal: &ConflictError{Attempted: in.Decision, Recorded: recorded}}, nil
	}
	if req.Status == StatusExpired || due {
		return outcome{result: AuditExpired, statusAfter: req.Status,
			refusal: fmt.Errorf("%w at %s", ErrExpired, req.ExpiresAt.Format(time.RFC3339))}, nil
	}
	if in.Decision == StatusApproved && req.RequestedBy == in.Decider && !s.cfg.AllowSelfApproval {
		return outcome{result: AuditSelfApproval, statusAfter: req.Status, refusal: ErrSelfApproval}, nil
	}
	return outcome{}, fmt.Errorf("approvals: request %s is pending but did not match the decision", in.RequestID)
}

func (s *Service) hookFor(decision Status) Hook {
	if decision == StatusApproved {
		return s.cfg.OnApprove
	}
	return s.cfg.OnReject
}

func (s *Service) logAttempt(ctx context.Context, tenant string, in DecideInput, out outcome) {
	recordDecision(ctx, in.Decision, out.result)
	attrs := []slog.Attr{
		slog.String("tenant_id", tenant), slog.String("request_id", in.RequestID),
		slog.String("decision", string(in.Decision)), slog.String("decider", in.Decider),
		slog.String("result", string(out.result)),
	}
	switch {
	case out.result == AuditHookFailed:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "approvals: decision hook failed; request stays pending", append(attrs, slog.String("error", out.refusal.Error()))...)
	case out.refusal != nil:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "approvals: decision refused", append(attrs, slog.String("reason", out.refusal.Error()))...)
	default:
		s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "approvals: decision recorded", append(attrs, slog.Bool("replayed", out.decision.Replayed))...)
	}
}

func auditAction(decision Status) string {
	if decision == StatusApproved {
		return "approve"
	}
	return "reject"
}
