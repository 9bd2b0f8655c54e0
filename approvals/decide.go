package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// MaxCommentLength is the longest decision comment accepted, in bytes.
const MaxCommentLength = 4000

// DecideInput is one attempt to approve or reject a request.
type DecideInput struct {
	// TenantID is the tenant of the request. Default: tenancy.TenantFrom(ctx).
	TenantID string
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
)

// Decide approves or rejects a request. The first decision wins: it is
// recorded by one conditional UPDATE that only matches a pending,
// unexpired request. A later attempt with the same decision succeeds with
// the recorded Decision (Replayed set, hooks not run again); with the other
// decision it fails with a *ConflictError carrying the recorded one.
// ErrExpired, ErrSelfApproval and ErrNotFound refuse the others. Every
// attempt, accepted or refused, is written to the audit trail in the same
// transaction as the attempt.
//
// Accepted decisions run Config.OnApprove or Config.OnReject in the same
// transaction; a hook error rolls everything back (the request stays
// pending) and is returned wrapped.
func (s *Service) Decide(ctx context.Context, in DecideInput) (Decision, error) {
	in, err := s.checkDecideInput(ctx, in)
	if err != nil {
		return Decision{}, err
	}
	var (
		d       Decision
		refusal error
	)
	err = rls.InTx(ctx, s.db, in.TenantID, func(tx pgx.Tx) error {
		d, refusal, err = s.decide(ctx, tx, in)
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	s.logAttempt(ctx, in, d, refusal)
	return d, refusal
}

// DecideTx is Decide inside the caller's transaction: the decision, its
// audit row and the hook's writes commit with the caller's. It scopes the
// rest of tx to the request's tenant. It works in a savepoint, so a hook
// error undoes only the decision and leaves tx usable. tx should run at
// READ COMMITTED (PostgreSQL's default): under REPEATABLE READ or
// SERIALIZABLE a concurrent decision surfaces as a serialization failure
// instead of the recorded decision.
func (s *Service) DecideTx(ctx context.Context, tx pgx.Tx, in DecideInput) (Decision, error) {
	in, err := s.checkDecideInput(ctx, in)
	if err != nil {
		return Decision{}, err
	}
	if err := rls.SetTenant(ctx, tx, in.TenantID); err != nil {
		return Decision{}, err
	}
	var (
		d       Decision
		refusal error
	)
	err = pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		d, refusal, err = s.decide(ctx, sp, in)
		return err
	})
	if err != nil {
		return Decision{}, err
	}
	s.logAttempt(ctx, in, d, refusal)
	return d, refusal
}

func (s *Service) checkDecideInput(ctx context.Context, in DecideInput) (DecideInput, error) {
	tenant, decider, err := fromContext(ctx, in.TenantID, in.Decider)
	if err != nil {
		return in, err
	}
	in.TenantID, in.Decider = tenant, decider
	if in.RequestID, err = parseRequestID(in.RequestID); err != nil {
		return in, err
	}
	switch {
	case in.Decision != StatusApproved && in.Decision != StatusRejected:
		return in, fmt.Errorf("%w: decision must be %q or %q", ErrInvalidDecision, StatusApproved, StatusRejected)
	case len(in.Comment) > MaxCommentLength || !utf8.ValidString(in.Comment):
		return in, fmt.Errorf("%w: comment must be at most %d bytes of UTF-8", ErrInvalidDecision, MaxCommentLength)
	case len(in.Decider) > MaxActorLength || !utf8.ValidString(in.Decider):
		return in, fmt.Errorf("%w: decider must be at most %d bytes of UTF-8", ErrInvalidDecision, MaxActorLength)
	}
	return in, nil
}

// decideSQL is the whole decision, with its audit row: it only matches a
// pending request that has not expired and, unless self-approval is
// allowed, is not being approved by its requester. Concurrent attempts
// serialize on the row; the losers re-check the WHERE clause against the
// winner's committed row and match nothing (and write no audit row here).
const decideSQL = `
WITH decided AS (
    UPDATE platform.approvals_requests
    SET status = $3, decided_by = $4, decided_at = $5, decision_comment = $6
    WHERE tenant_id = $1 AND id = $2 AND status = 'pending' AND expires_at > $5
      AND ($7::boolean OR $3 <> 'approved' OR requested_by <> $4)
    RETURNING *),
audited AS (
    INSERT INTO platform.approvals_audit
        (tenant_id, request_id, actor, action, result, status_after, comment, recorded_at)
    SELECT tenant_id, id, $4, $8, 'accepted', status, $6, $5 FROM decided)
SELECT ` + requestColumns + ` FROM decided`

const selectRequestSQL = `SELECT ` + requestColumns + ` FROM platform.approvals_requests
WHERE tenant_id = $1 AND id = $2`

const insertAuditSQL = `
INSERT INTO platform.approvals_audit
    (tenant_id, request_id, actor, action, result, status_after, comment, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// attempt is the outcome of one decide attempt: what it returns and what
// the audit trail records.
type attempt struct {
	decision    Decision
	result      AuditResult
	statusAfter Status
	refusal     error
}

// decide runs one attempt in tx. A refusal is returned as refusal, not
// err: the transaction still commits, so the audit row stays.
func (s *Service) decide(ctx context.Context, tx pgx.Tx, in DecideInput) (d Decision, refusal, err error) {
	now := s.now()
	req, err := scanRequest(tx.QueryRow(ctx, decideSQL, in.TenantID, in.RequestID, string(in.Decision),
		in.Decider, now, in.Comment, s.cfg.AllowSelfApproval, auditAction(in.Decision)))
	switch {
	case err == nil:
		d, _ = req.decision()
		if err := s.runHook(ctx, tx, d); err != nil {
			return Decision{}, nil, err
		}
		return d, nil, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return Decision{}, nil, fmt.Errorf("approvals: decide: %w", err)
	}
	a, err := s.explainRefusal(ctx, tx, in, now)
	if err != nil {
		return Decision{}, nil, err
	}
	_, err = tx.Exec(ctx, insertAuditSQL, in.TenantID, in.RequestID, in.Decider, auditAction(in.Decision),
		string(a.result), string(a.statusAfter), in.Comment, now)
	if err != nil {
		return Decision{}, nil, fmt.Errorf("approvals: write audit: %w", err)
	}
	return a.decision, a.refusal, nil
}

// explainRefusal reads the request the UPDATE did not match and says why.
// Under READ COMMITTED this statement sees any decision committed by a
// concurrent winner.
func (s *Service) explainRefusal(ctx context.Context, tx pgx.Tx, in DecideInput, now time.Time) (attempt, error) {
	req, err := scanRequest(tx.QueryRow(ctx, selectRequestSQL, in.TenantID, in.RequestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return attempt{result: AuditNotFound, refusal: ErrNotFound}, nil
	}
	if err != nil {
		return attempt{}, fmt.Errorf("approvals: read request: %w", err)
	}
	if recorded, decided := req.decision(); decided {
		if recorded.Status == in.Decision {
			recorded.Replayed = true
			return attempt{decision: recorded, result: AuditReplayed, statusAfter: recorded.Status}, nil
		}
		return attempt{result: AuditConflict, statusAfter: recorded.Status,
			refusal: &ConflictError{Attempted: in.Decision, Recorded: recorded}}, nil
	}
	if req.Status == StatusExpired || !req.ExpiresAt.After(now) {
		return attempt{result: AuditExpired, statusAfter: req.Status,
			refusal: fmt.Errorf("%w at %s", ErrExpired, req.ExpiresAt.Format(time.RFC3339))}, nil
	}
	if in.Decision == StatusApproved && req.RequestedBy == in.Decider && !s.cfg.AllowSelfApproval {
		return attempt{result: AuditSelfApproval, statusAfter: req.Status, refusal: ErrSelfApproval}, nil
	}
	return attempt{}, fmt.Errorf("approvals: request %s is pending but did not match the decision", in.RequestID)
}

func (s *Service) runHook(ctx context.Context, tx pgx.Tx, d Decision) error {
	hook := s.cfg.OnReject
	if d.Status == StatusApproved {
		hook = s.cfg.OnApprove
	}
	if hook == nil {
		return nil
	}
	if err := hook(ctx, tx, d); err != nil {
		return fmt.Errorf("approvals: %s hook for request %s: %w", d.Status, d.RequestID, err)
	}
	return nil
}

func (s *Service) logAttempt(ctx context.Context, in DecideInput, d Decision, refusal error) {
	recordDecision(ctx, in.Decision, d, refusal)
	attrs := []slog.Attr{
		slog.String("tenant_id", in.TenantID), slog.String("request_id", in.RequestID),
		slog.String("decision", string(in.Decision)), slog.String("decider", in.Decider),
	}
	if refusal != nil {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "approvals: decision refused", append(attrs, slog.String("reason", refusal.Error()))...)
		return
	}
	s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "approvals: decision recorded", append(attrs, slog.Bool("replayed", d.Replayed))...)
}

func auditAction(decision Status) string {
	if decision == StatusApproved {
		return "approve"
	}
	return "reject"
}
