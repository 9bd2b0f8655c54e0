package approvals

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/dbx"
	"github.com/dealix/platform/internal/errs"
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
	// plus Config.TTL, after which it can no longer be decided. Both are
	// the database's clock.
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
// the decision and the hook's writes are rolled back, the request stays
// pending, and the failed attempt is recorded in the audit trail. ctx
// carries the request's tenant (tenancy.TenantFrom), and tx is scoped to
// it. A hook must neither commit nor roll back tx.
type Hook func(ctx context.Context, tx pgx.Tx, d Decision) error

// DB is the database handle New, NewSweeper and ObservePending take: the
// methods of *pgxpool.Pool they call, so a pool, a wrapped pool or a
// *pgx.Conn will do. It is the same interface in every package of the
// library.
type DB = dbx.DB

// Config configures a Service. The zero value is usable: every field
// documents its default.
type Config struct {
	// Policy decides which actions need approval. New takes a copy, maps
	// included, so changing the caller's Policy afterwards has no effect.
	// Default: DefaultPolicy() (more than 50 recipients, risk 0.7 or more,
	// critical).
	Policy *Policy
	// TTL is how long a request may wait for a decision, counted on the
	// database's clock. Default: DefaultTTL (72 hours). Must not be
	// negative.
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
	// Logger receives one record per decision. Default: slog.Default().
	Logger *slog.Logger
}

// Service holds risky actions for approval and records decisions. It is
// safe for concurrent use.
type Service struct {
	db     DB
	policy Policy
	cfg    Config
}

// New returns a Service storing requests through db, which should connect
// as the application role (row-level security binds it to one tenant per
// transaction). It validates cfg; errors match ErrInvalidConfig or
// ErrInvalidPolicy.
func New(db DB, cfg Config) (*Service, error) {
	if db == nil {
		return nil, errs.Config("approvals", "nil database")
	}
	policy := DefaultPolicy()
	if cfg.Policy != nil {
		// A copy of the caller's maps: Evaluate reads them concurrently.
		policy = cfg.Policy.clone()
		cfg.Policy = nil
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL < 0 || cfg.MaxPayloadBytes < 0 {
		return nil, errs.Config("approvals", "negative TTL or MaxPayloadBytes")
	}
	if cfg.TTL > 0 && cfg.TTL < time.Microsecond {
		return nil, errs.Config("approvals", "TTL %s is below PostgreSQL's microsecond", cfg.TTL)
	}
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.MaxPayloadBytes = cmp.Or(cfg.MaxPayloadBytes, DefaultMaxPayloadBytes)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	return &Service{db: db, policy: policy, cfg: cfg}, nil
}

// Policy returns a copy of the policy the service applies.
func (s *Service) Policy() Policy { return s.policy.clone() }

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

// Request asks for action a in the tenant of ctx (tenancy.TenantFrom;
// ErrNoTenant without one). When the policy allows it, nothing is stored
// and the result says Allowed. Otherwise a pending request is stored in a
// transaction of its own (or the existing one for the same action
// returned: same idempotency key, or same fingerprint when no key is
// given). An empty a.Actor is taken from ctx's principal
// (tenancy.PrincipalFrom).
func (s *Service) Request(ctx context.Context, a Action) (Result, error) {
	tenant, err := contextTenant(ctx)
	if err != nil {
		return Result{}, err
	}
	return s.request(ctx, tenant, a)
}

// RequestForTenant is Request for system work that names the tenant
// explicitly (a worker, an admin tool) rather than through ctx. An empty
// tenant is ErrNoTenant, a malformed one ErrInvalidTenant.
func (s *Service) RequestForTenant(ctx context.Context, tenant string, a Action) (Result, error) {
	tenant, err := explicitTenant(tenant)
	if err != nil {
		return Result{}, err
	}
	return s.request(ctx, tenant, a)
}

func (s *Service) request(ctx context.Context, tenant string, a Action) (Result, error) {
	a, eval, err := s.prepare(ctx, tenant, a)
	if err != nil || !eval.NeedsApproval {
		if err == nil {
			recordRequest(ctx, a.Kind, Result{Allowed: true})
		}
		return Result{Allowed: err == nil, Evaluation: eval}, err
	}
	var res Result
	err = rls.InTx(ctx, s.db, tenant, func(tx pgx.Tx) error {
		res, err = s.store(ctx, tx, tenant, a, eval)
		return err
	})
	if err != nil {
		return Result{}, err
	}
	recordRequest(ctx, a.Kind, res)
	return res, nil
}

// RequestTx is Request inside the caller's transaction, so the request is
// stored atomically with the caller's own writes, in the tenant tx is
// scoped to. tx must already be scoped to a tenant; it is never re-scoped,
// and a context naming another tenant is refused with a
// *tenancy.TenantMismatchError (ErrTenantMismatch) before anything is
// written. An unscoped tx is ErrNoTenant.
func (s *Service) RequestTx(ctx context.Context, tx pgx.Tx, a Action) (Result, error) {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return Result{}, err
	}
	a, eval, err := s.prepare(ctx, tenant, a)
	if err != nil || !eval.NeedsApproval {
		if err == nil {
			recordRequest(ctx, a.Kind, Result{Allowed: true})
		}
		return Result{Allowed: err == nil, Evaluation: eval}, err
	}
	res, err := s.store(ctx, tx, tenant, a, eval)
	if err == nil {
		// Counted when the caller's transaction is handed back, not when
		// it commits: a rolled-back request is still an attempt.
		recordRequest(ctx, a.Kind, res)
	}
	return res, err
}

// prepare fills a's actor from ctx, validates a and evaluates the policy.
func (s *Service) prepare(ctx context.Context, tenant string, a Action) (Action, Evaluation, error) {
	actor, err := actorFrom(ctx, a.Actor)
	if err != nil {
		return a, Evaluation{}, err
	}
	a.Actor = actor
	if len(a.Payload) > s.cfg.MaxPayloadBytes {
		return a, Evaluation{}, fmt.Errorf("%w: payload of %d bytes is over the limit of %d", ErrInvalidAction, len(a.Payload), s.cfg.MaxPayloadBytes)
	}
	eval, err := s.policy.Evaluate(tenant, a)
	return a, eval, err
}

// contextTenant is the tenant of the request path: ctx's, else
// ErrNoTenant.
func contextTenant(ctx context.Context) (string, error) {
	tenant, ok := tenancy.TenantFrom(ctx)
	if !ok {
		return "", ErrNoTenant
	}
	return tenant, nil
}

// explicitTenant validates the tenant a …ForTenant call names.
func explicitTenant(tenant string) (string, error) {
	if tenant == "" {
		return "", ErrNoTenant
	}
	return canonicalTenant(tenant)
}

// actorFrom resolves who acts: the explicit value, else the subject of
// ctx's principal, else ErrNoActor.
func actorFrom(ctx context.Context, actor string) (string, error) {
	if actor == "" {
		if p, ok := tenancy.PrincipalFrom(ctx); ok {
			actor = p.Subject
		}
	}
	if actor == "" {
		return "", ErrNoActor
	}
	return actor, nil
}

// hookContext is ctx carrying tenant, as promised to hooks: a …ForTenant
// or …Tx call may have been given a context without it.
func hookContext(ctx context.Context, tenant string) context.Context {
	if t, ok := tenancy.TenantFrom(ctx); ok && t == tenant {
		return ctx
	}
	scoped, err := tenancy.WithTenant(ctx, tenant)
	if err != nil { // unreachable: tenant is canonical here
		return ctx
	}
	return scoped
}

// Times are the database's: now() in each statement (the transaction's
// start), never the process clock, so instances whose clocks differ agree
// on when a request expires.

// expireStaleSQL expires an undecided request for the same action whose
// time has passed, with its audit row, so a new request can take its place.
const expireStaleSQL = `
WITH expired AS (
    UPDATE platform.approvals_requests SET status = 'expired'
    WHERE tenant_id = $1 AND dedupe_key = $2 AND status = 'pending' AND expires_at <= now()
    RETURNING tenant_id, id)
INSERT INTO platform.approvals_audit (tenant_id, request_id, actor, action, result, status_after, recorded_at)
SELECT tenant_id, id, $3, 'expire', 'expired', 'expired', now() FROM expired`

// insertRequestSQL stores a new request; $12 is the time to live in
// microseconds.
const insertRequestSQL = `
INSERT INTO platform.approvals_requests
    (tenant_id, kind, requested_by, dedupe_key, fingerprint, idempotency_key, reasons,
     recipients, risk, critical, payload, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, $11::jsonb,
        now(), now() + $12::bigint * interval '1 microsecond')
ON CONFLICT (tenant_id, dedupe_key) WHERE status <> 'expired' DO NOTHING
RETURNING ` + requestColumns

// selectByDedupeSQL reads the live request for an action, and whether its
// time has passed.
const selectByDedupeSQL = `SELECT ` + requestColumns + `, expires_at <= now()
FROM platform.approvals_requests
WHERE tenant_id = $1 AND dedupe_key = $2 AND status <> 'expired'`

// SystemActor is the actor recorded in the audit trail for expiries.
const SystemActor = "system"

// store writes the pending request, or finds the one already there. The
// common case, a new action, costs one statement. A request for the same
// action that expired undecided but was not swept yet is expired here, so a
// new one can take its place.
func (s *Service) store(ctx context.Context, tx pgx.Tx, tenant string, a Action, eval Evaluation) (Result, error) {
	fingerprint := a.Fingerprint()
	key := a.dedupeKey(fingerprint)
	reasons := make([]string, len(eval.Reasons))
	for i, r := range eval.Reasons {
		reasons[i] = string(r)
	}
	payload := string(compactPayload(a.Payload))
	for attempt := 0; ; attempt++ {
		row := tx.QueryRow(ctx, insertRequestSQL, tenant, a.Kind, a.Actor, key, fingerprint,
			a.IdempotencyKey, reasons, a.Recipients, a.Risk, a.Critical, payload, s.cfg.TTL.Microseconds())
		req, err := scanRequest(row)
		if err == nil {
			return Result{Evaluation: eval, Request: &req, Created: true}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Result{}, fmt.Errorf("approvals: store request: %w", err)
		}
		var due bool
		req, err = scanRequest(tx.QueryRow(ctx, selectByDedupeSQL, tenant, key), &due)
		if errors.Is(err, pgx.ErrNoRows) && attempt == 0 {
			continue // the conflicting request expired meanwhile
		}
		if err != nil {
			return Result{}, fmt.Errorf("approvals: read existing request: %w", err)
		}
		if req.Fingerprint != fingerprint {
			return Result{}, fmt.Errorf("%w: key %q names request %s", ErrIdempotencyKeyReused, a.IdempotencyKey, req.ID)
		}
		if req.Status != StatusPending || !due || attempt > 0 {
			return Result{Evaluation: eval, Request: &req, Created: false}, nil
		}
		if _, err := tx.Exec(ctx, expireStaleSQL, tenant, key, SystemActor); err != nil {
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
