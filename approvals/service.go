package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

// DefaultTTL is Config.TTL's default: how long a request waits for a
// decision before it expires.
const DefaultTTL = 72 * time.Hour

// Status is the state of a request.
type Status string

const (
	// StatusPending: waiting for a decision.
	StatusPending Status = "pending"
	// StatusApproved: approved; the continuation was written with the
	// decision.
	StatusApproved Status = "approved"
	// StatusRejected: rejected; the action is never carried out.
	StatusRejected Status = "rejected"
	// StatusExpired: nobody decided within the time to live; the action is
	// never carried out.
	StatusExpired Status = "expired"
)

// Valid reports whether s is one of the four statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusPending, StatusApproved, StatusRejected, StatusExpired:
		return true
	}
	return false
}

// Request is a stored approval request.
type Request struct {
	// ID is the request's UUID.
	ID string `json:"id"`
	// TenantID is the tenant the request belongs to.
	TenantID string `json:"tenant_id"`
	// Kind, Recipients, Risk, Critical and Payload are the held action's.
	Kind       string          `json:"kind"`
	Recipients int             `json:"recipients"`
	Risk       float64         `json:"risk"`
	Critical   bool            `json:"critical"`
	Payload    json.RawMessage `json:"payload"`
	// RequestedBy is the action's actor.
	RequestedBy string `json:"requested_by"`
	// Reasons say why the policy held the action.
	Reasons []Reason `json:"reasons"`
	// Fingerprint is Action.Fingerprint of the held action.
	Fingerprint string `json:"fingerprint"`
	// IdempotencyKey is the action's key, if it had one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Status is pending, approved, rejected or expired.
	Status Status `json:"status"`
	// CreatedAt is when the request was stored; ExpiresAt is CreatedAt
	// plus Config.TTL, after which it can no longer be decided.
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// DecidedBy, DecidedAt and Comment are set once approved or rejected.
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

// Decision is a recorded approval or rejection, as handed to the
// continuation hooks and returned by Decide.
type Decision struct {
	// RequestID and TenantID name the decided request.
	RequestID string `json:"request_id"`
	TenantID  string `json:"tenant_id"`
	// Kind and Payload are the held action's: what the continuation runs.
	Kind    string          `json:"kind"`
	Payload json.RawMessage `json:"payload"`
	// RequestedBy is the action's actor.
	RequestedBy string `json:"requested_by"`
	// Status is StatusApproved or StatusRejected.
	Status Status `json:"status"`
	// DecidedBy, DecidedAt and Comment are the decider's, as recorded.
	DecidedBy string    `json:"decided_by"`
	DecidedAt time.Time `json:"decided_at"`
	Comment   string    `json:"comment"`
	// Replayed is true when this call did not make the decision but found
	// the same decision already recorded (an idempotent repeat): the hooks
	// did not run again.
	Replayed bool `json:"replayed"`
}

// decision returns r's recorded decision; ok is false while r is undecided.
func (r Request) decision() (d Decision, ok bool) {
	if r.DecidedAt == nil {
		return Decision{}, false
	}
	return Decision{
		RequestID: r.ID, TenantID: r.TenantID, Kind: r.Kind, Status: r.Status,
		DecidedBy: r.DecidedBy, DecidedAt: *r.DecidedAt, Comment: r.Comment,
		RequestedBy: r.RequestedBy, Payload: r.Payload,
	}, true
}

// Hook runs inside the transaction that records a decision: the outbox. A
// continuation written through tx (a queue job, a signal to a waiting run)
// commits exactly when the decision does; when the hook returns an error
// the decision is rolled back and the request stays pending.
type Hook func(ctx context.Context, tx pgx.Tx, d Decision) error

// Beginner starts a transaction; *pgxpool.Pool and *pgx.Conn satisfy it.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Config configures a Service. The zero value is usable: every field
// documents its default.
type Config struct {
	// Policy decides which actions need approval. Default: DefaultPolicy()
	// (more than 50 recipients, risk 0.7 or more, critical).
	Policy *Policy
	// TTL is how long a request may wait for a decision. Default: DefaultTTL
	// (72 hours). Must not be negative.
	TTL time.Duration
	// AllowSelfApproval lets a requester approve their own request.
	// Default false: refused with ErrSelfApproval. Rejecting one's own
	// request (withdrawing it) is always allowed.
	AllowSelfApproval bool
	// OnApprove is the continuation of the blocked action, run inside the
	// approving transaction exactly once per request. Default: none.
	OnApprove Hook
	// OnReject runs inside the rejecting transaction, for example to
	// notify the requester. Default: none.
	OnReject Hook
	// MaxPayloadBytes caps an action's payload. Default:
	// DefaultMaxPayloadBytes (64 KiB). Must not be negative.
	MaxPayloadBytes int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Logger receives one record per decision. Default: slog.Default().
	Logger *slog.Logger
}

// Service holds risky actions for approval and records decisions. It is
// safe for concurrent use.
type Service struct {
	db     Beginner
	policy Policy
	cfg    Config
}

// New returns a Service storing requests through db, which should connect
// as the application role (row-level security binds it to one tenant per
// transaction). It validates cfg.
func New(db Beginner, cfg Config) (*Service, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database", ErrInvalidConfig)
	}
	policy := DefaultPolicy()
	if cfg.Policy != nil {
		policy = *cfg.Policy
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL < 0 || cfg.MaxPayloadBytes < 0 {
		return nil, fmt.Errorf("%w: negative TTL or MaxPayloadBytes", ErrInvalidConfig)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MaxPayloadBytes == 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{db: db, policy: policy, cfg: cfg}, nil
}

// Policy returns the policy the service applies.
func (s *Service) Policy() Policy { return s.policy }

// now is the clock, at the precision PostgreSQL stores.
func (s *Service) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Microsecond)
}

// Result is the answer to asking for an action.
type Result struct {
	// Allowed is true when the action needs no approval: carry it out now.
	// Request is nil then.
	Allowed bool
	// Evaluation is the policy's verdict, with the reasons.
	Evaluation Evaluation
	// Request is the approval request holding the action, when it needs
	// approval. Its continuation runs through Config.OnApprove once it is
	// approved; the caller must not carry the action out itself.
	Request *Request
	// Created is false when Request already existed (the same action was
	// asked for before).
	Created bool
}

// Request asks for action a. When the policy allows it, nothing is stored
// and the result says Allowed. Otherwise a pending request is stored (or
// the existing one for the same action returned: same idempotency key, or
// same fingerprint when no key is given). An empty a.TenantID or a.Actor is
// taken from ctx (tenancy.TenantFrom, tenancy.PrincipalFrom).
func (s *Service) Request(ctx context.Context, a Action) (Result, error) {
	a, eval, err := s.prepare(ctx, a)
	if err != nil || !eval.NeedsApproval {
		if err == nil {
			recordRequest(ctx, a.Kind, Result{Allowed: true})
		}
		return Result{Allowed: err == nil, Evaluation: eval}, err
	}
	var res Result
	err = rls.InTx(ctx, s.db, a.TenantID, func(tx pgx.Tx) error {
		res, err = s.store(ctx, tx, a, eval)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	recordRequest(ctx, a.Kind, res)
	return res, nil
}

// RequestTx is Request inside the caller's transaction, so the request is
// stored atomically with the caller's own writes. It scopes the rest of tx
// to a's tenant (set_config('app.tenant_id', …, true)).
func (s *Service) RequestTx(ctx context.Context, tx pgx.Tx, a Action) (Result, error) {
	a, eval, err := s.prepare(ctx, a)
	if err != nil || !eval.NeedsApproval {
		if err == nil {
			recordRequest(ctx, a.Kind, Result{Allowed: true})
		}
		return Result{Allowed: err == nil, Evaluation: eval}, err
	}
	if err := rls.SetTenant(ctx, tx, a.TenantID); err != nil {
		return Result{}, err
	}
	res, err := s.store(ctx, tx, a, eval)
	if err == nil {
		// Counted when the caller's transaction is handed back, not when
		// it commits: a rolled-back request is still an attempt.
		recordRequest(ctx, a.Kind, res)
	}
	return res, err
}

// prepare fills a from ctx, validates it and evaluates the policy.
func (s *Service) prepare(ctx context.Context, a Action) (Action, Evaluation, error) {
	tenant, actor, err := fromContext(ctx, a.TenantID, a.Actor)
	if err != nil {
		return a, Evaluation{}, err
	}
	a.TenantID, a.Actor = tenant, actor
	if len(a.Payload) > s.cfg.MaxPayloadBytes {
		return a, Evaluation{}, fmt.Errorf("%w: payload of %d bytes is over the limit of %d", ErrInvalidAction, len(a.Payload), s.cfg.MaxPayloadBytes)
	}
	eval, err := s.policy.Evaluate(a)
	return a, eval, err
}

// fromContext resolves the tenant and the actor: explicit values first,
// then the context's tenant and principal.
func fromContext(ctx context.Context, tenant, actor string) (string, string, error) {
	if tenant == "" {
		tenant, _ = tenancy.TenantFrom(ctx)
	}
	if tenant == "" {
		return "", "", ErrNoTenant
	}
	canonical, err := canonicalTenant(tenant)
	if err != nil {
		return "", "", err
	}
	if actor == "" {
		if p, ok := tenancy.PrincipalFrom(ctx); ok {
			actor = p.Subject
		}
	}
	if actor == "" {
		return "", "", ErrNoActor
	}
	return canonical, actor, nil
}

// expireStaleSQL expires an undecided request for the same action whose
// time has passed, with its audit row, so a new request can take its place.
const expireStaleSQL = `
WITH expired AS (
    UPDATE platform.approvals_requests SET status = 'expired'
    WHERE tenant_id = $1 AND dedupe_key = $2 AND status = 'pending' AND expires_at <= $3
    RETURNING tenant_id, id)
INSERT INTO platform.approvals_audit (tenant_id, request_id, actor, action, result, status_after, recorded_at)
SELECT tenant_id, id, $4, 'expire', 'expired', 'expired', $3 FROM expired`

const insertRequestSQL = `
INSERT INTO platform.approvals_requests
    (tenant_id, kind, requested_by, dedupe_key, fingerprint, idempotency_key, reasons,
     recipients, risk, critical, payload, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, $11::jsonb, $12, $13)
ON CONFLICT (tenant_id, dedupe_key) WHERE status <> 'expired' DO NOTHING
RETURNING ` + requestColumns

const selectByDedupeSQL = `SELECT ` + requestColumns + ` FROM platform.approvals_requests
WHERE tenant_id = $1 AND dedupe_key = $2 AND status <> 'expired'`

// SystemActor is the actor recorded in the audit trail for expiries.
const SystemActor = "system"

// store writes the pending request, or finds the one already there. The
// common case, a new action, costs one statement. A request for the same
// action that expired undecided but was not swept yet is expired here, so a
// new one can take its place.
func (s *Service) store(ctx context.Context, tx pgx.Tx, a Action, eval Evaluation) (Result, error) {
	now := s.now()
	fingerprint := a.Fingerprint()
	key := a.dedupeKey(fingerprint)
	reasons := make([]string, len(eval.Reasons))
	for i, r := range eval.Reasons {
		reasons[i] = string(r)
	}
	payload := string(compactPayload(a.Payload))
	for attempt := 0; ; attempt++ {
		row := tx.QueryRow(ctx, insertRequestSQL, a.TenantID, a.Kind, a.Actor, key, fingerprint,
			a.IdempotencyKey, reasons, a.Recipients, a.Risk, a.Critical, payload, now, now.Add(s.cfg.TTL))
		req, err := scanRequest(row)
		if err == nil {
			return Result{Evaluation: eval, Request: &req, Created: true}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Result{}, fmt.Errorf("approvals: store request: %w", err)
		}
		req, err = scanRequest(tx.QueryRow(ctx, selectByDedupeSQL, a.TenantID, key))
		if errors.Is(err, pgx.ErrNoRows) && attempt == 0 {
			continue // the conflicting request expired meanwhile
		}
		if err != nil {
			return Result{}, fmt.Errorf("approvals: read existing request: %w", err)
		}
		if req.Fingerprint != fingerprint {
			return Result{}, fmt.Errorf("%w: key %q names request %s", ErrIdempotencyKeyReused, a.IdempotencyKey, req.ID)
		}
		if req.Status != StatusPending || req.ExpiresAt.After(now) || attempt > 0 {
			return Result{Evaluation: eval, Request: &req, Created: false}, nil
		}
		if _, err := tx.Exec(ctx, expireStaleSQL, a.TenantID, key, now, SystemActor); err != nil {
			return Result{}, fmt.Errorf("approvals: expire stale request: %w", err)
		}
	}
}

// requestColumns is the select list scanRequest reads.
const requestColumns = `id::text, tenant_id::text, kind, requested_by, reasons, recipients, risk, critical,
    payload::text, fingerprint, COALESCE(idempotency_key, ''), status, created_at, expires_at,
    COALESCE(decided_by, ''), decided_at, COALESCE(decision_comment, '')`

// scanRequest reads the requestColumns of row, then extra columns into
// extra.
func scanRequest(row pgx.Row, extra ...any) (Request, error) {
	var (
		r       Request
		reasons []string
		payload string
		status  string
	)
	dest := []any{&r.ID, &r.TenantID, &r.Kind, &r.RequestedBy, &reasons, &r.Recipients, &r.Risk,
		&r.Critical, &payload, &r.Fingerprint, &r.IdempotencyKey, &status, &r.CreatedAt, &r.ExpiresAt,
		&r.DecidedBy, &r.DecidedAt, &r.Comment}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return Request{}, err
	}
	r.Status = Status(status)
	r.Payload = json.RawMessage(payload)
	r.Reasons = make([]Reason, len(reasons))
	for i, reason := range reasons {
		r.Reasons[i] = Reason(reason)
	}
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	if r.DecidedAt != nil {
		t := r.DecidedAt.UTC()
		r.DecidedAt = &t
	}
	return r, nil
}
