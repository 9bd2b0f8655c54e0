package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// ActionKind is the kind of the approval requests of campaigns: register
// OnApproved and OnRejected for it.
const ActionKind = "outbound.campaign"

// JobKind is the kind of the send jobs on the outbound queue: register
// Deliver for it.
const JobKind = "campaign.send"

// StatusPath is the path of a campaign's status.
func StatusPath(id string) string { return "/api/v1/outbound/campaigns/" + id }

// Service is the outbound domain: its HTTP handlers, its approval
// continuations and its job handler.
type Service struct {
	// DB is the app role's pool (bound by row-level security).
	DB httpx.DB
	// Jobs enqueues the send jobs (EnqueueTx, in the caller's transaction).
	Jobs *dlq.Client
	// Queue is the queue the send jobs go to.
	Queue string
	// Approvals is the gate that holds risky campaigns.
	Approvals *approvals.Service
	// Sender delivers the messages.
	Sender Sender
	// YieldBefore is how long before a send attempt's deadline the worker
	// hands a campaign back to the queue (dlq.Snooze, no attempt used)
	// rather than start another recipient, once it has sent at least one.
	// Default: DefaultYieldBefore (5s).
	YieldBefore time.Duration
	// MaxBodyBytes bounds a request body. Default: httpx.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Log receives server-side failures.
	Log *slog.Logger
}

// sendJob is the payload of a send job and of a campaign's approval
// request: the campaign's id, nothing the worker could find stale.
type sendJob struct {
	CampaignID string `json:"campaign_id"`
}

// created is the answer to POST /api/v1/outbound/campaigns.
type created struct {
	Campaign Campaign `json:"campaign"`
	// ApprovalID, Reasons: set when the campaign is held (202).
	ApprovalID *string            `json:"approval_request_id,omitempty"`
	Reasons    []approvals.Reason `json:"reasons,omitempty"`
	StatusURL  string             `json:"status_url"`
}

// Create handles POST /api/v1/outbound/campaigns. It runs in the request's
// idempotency transaction: the campaign row and either its approval
// request (202 Accepted, held) or its send job (201 Created) commit
// together with the stored response, or none of them does.
func (s *Service) Create(w http.ResponseWriter, r *http.Request) {
	var in createInput
	if err := httpx.Decode(w, r, s.MaxBodyBytes, &in); err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	if err := in.validate(); err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	tenant, ok := tenancy.TenantFrom(r.Context())
	p, hasPrincipal := tenancy.PrincipalFrom(r.Context())
	if !ok || !hasPrincipal || p.Subject == "" {
		httpx.Fail(w, r, s.Log, httpx.Errorf(http.StatusForbidden, "the request carries no tenant or no subject"))
		return
	}
	id := uuid.NewString()
	payload, _ := json.Marshal(sendJob{CampaignID: id})
	var out created
	err := httpx.InTx(r, s.DB, func(ctx context.Context, tx pgx.Tx) error {
		res, err := s.Approvals.RequestTx(ctx, tx, approvals.Action{
			Kind: ActionKind, Actor: p.Subject, Recipients: len(in.Recipients), Risk: in.Risk,
			Critical: in.Critical, Payload: payload, IdempotencyKey: ActionKind + ":" + id,
		})
		if err != nil {
			return err
		}
		status := StatusSending
		var approvalID *string
		if !res.Allowed {
			status, approvalID = StatusPendingApproval, &res.Request.ID
			out.ApprovalID, out.Reasons = approvalID, res.Evaluation.Reasons
		}
		if _, err := tx.Exec(ctx, `INSERT INTO dealix.outbound_campaigns
			(tenant_id, id, name, subject, body, recipients, risk, critical, status, approval_id, requested_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			tenant, id, in.Name, in.Message.Subject, in.Message.Body, in.Recipients, in.Risk, in.Critical,
			status, approvalID, p.Subject); err != nil {
			return err
		}
		if res.Allowed {
			if err := s.enqueue(ctx, tx, id); err != nil {
				return err
			}
		}
		out.Campaign, err = getCampaign(ctx, tx, id)
		return err
	})
	if err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	out.StatusURL = StatusPath(id)
	w.Header().Set("Location", out.StatusURL)
	status := http.StatusCreated
	if out.ApprovalID != nil {
		status = http.StatusAccepted
	}
	httpx.JSON(w, status, out)
}

// enqueue writes the campaign's send job in tx. The dedup key makes a
// second enqueue of the same campaign a no-op.
func (s *Service) enqueue(ctx context.Context, tx pgx.Tx, campaignID string) error {
	_, err := s.Jobs.EnqueueTx(ctx, tx, dlq.JobParams{
		Queue: s.Queue, Kind: JobKind, Payload: sendJob{CampaignID: campaignID}, DedupKey: "campaign:" + campaignID,
	})
	return err
}

// Get handles GET /api/v1/outbound/campaigns/{id}: the campaign's status
// and its delivery counts. A held campaign whose approval request expired
// undecided shows StatusExpired. Another tenant's campaign is 404, as a missing
// one.
func (s *Service) Get(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		httpx.Fail(w, r, s.Log, notFound())
		return
	}
	var c Campaign
	var now time.Time
	err = httpx.InTx(r, s.DB, func(ctx context.Context, tx pgx.Tx) error {
		if c, err = getCampaign(ctx, tx, id.String()); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT now()`).Scan(&now)
	})
	if err == nil && c.Status == StatusPendingApproval && c.ApprovalID != nil {
		// Nothing tells the campaign that its request ran out of time
		// undecided: ask the gate, on the database's clock.
		var req approvals.Request
		if req, err = s.Approvals.Get(r.Context(), *c.ApprovalID); err == nil &&
			(req.Status == approvals.StatusExpired || (req.Status == approvals.StatusPending && !req.ExpiresAt.After(now))) {
			c.Status = StatusExpired
		}
	}
	if err != nil {
		httpx.Fail(w, r, s.Log, err)
		return
	}
	httpx.JSON(w, http.StatusOK, c)
}

func notFound() error { return httpx.Errorf(http.StatusNotFound, "no such campaign") }

// getCampaign reads a campaign of tx's tenant with its counts.
func getCampaign(ctx context.Context, tx pgx.Tx, id string) (Campaign, error) {
	var c Campaign
	err := tx.QueryRow(ctx, `SELECT c.id::text, c.name, c.subject, c.body, c.risk, c.critical, c.status,
			c.approval_id::text, c.requested_by, c.decided_by, c.decided_at, c.created_at, c.updated_at, c.sent_at,
			cardinality(c.recipients),
			(SELECT count(*) FROM dealix.outbound_messages m
			  WHERE m.tenant_id = c.tenant_id AND m.campaign_id = c.id AND m.status = 'sent')
		FROM dealix.outbound_campaigns c WHERE c.tenant_id = $2 AND c.id = $1`, id, httpx.TenantOf(ctx)).Scan(
		&c.ID, &c.Name, &c.Message.Subject, &c.Message.Body, &c.Risk, &c.Critical, &c.Status,
		&c.ApprovalID, &c.RequestedBy, &c.DecidedBy, &c.DecidedAt, &c.CreatedAt, &c.UpdatedAt, &c.SentAt,
		&c.Counts.Recipients, &c.Counts.Sent)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound()
	}
	c.Counts.Pending = c.Counts.Recipients - c.Counts.Sent
	return c, err
}

// campaignFrom reads the campaign id of an approval request's payload.
func campaignFrom(d approvals.Decision) (string, error) {
	var p sendJob
	if err := json.Unmarshal(d.Payload, &p); err != nil {
		return "", fmt.Errorf("outbound: approval request %s: payload: %w", d.RequestID, err)
	}
	if _, err := uuid.Parse(p.CampaignID); err != nil {
		return "", fmt.Errorf("outbound: approval request %s: campaign id %q: %w", d.RequestID, p.CampaignID, err)
	}
	return p.CampaignID, nil
}

// OnApproved is the continuation of an approved campaign (an
// approvals.Hook for ActionKind): in the approving transaction it marks
// the campaign sending and enqueues its send job, so the job exists
// exactly when the approval does.
func (s *Service) OnApproved(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
	id, err := campaignFrom(d)
	if err != nil {
		return err
	}
	if err := s.decide(ctx, tx, id, StatusSending, d); err != nil {
		return err
	}
	return s.enqueue(ctx, tx, id)
}

// OnRejected records a rejected campaign (an approvals.Hook for
// ActionKind), in the rejecting transaction. Nothing is enqueued.
func (s *Service) OnRejected(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
	id, err := campaignFrom(d)
	if err != nil {
		return err
	}
	return s.decide(ctx, tx, id, StatusRejected, d)
}

func (s *Service) decide(ctx context.Context, tx pgx.Tx, id, status string, d approvals.Decision) error {
	tag, err := tx.Exec(ctx, `UPDATE dealix.outbound_campaigns
		SET status = $2, decided_by = $3, decided_at = $4, updated_at = now()
		WHERE tenant_id = $5 AND id = $1 AND status = 'pending_approval'`, id, status, d.DecidedBy, d.DecidedAt, d.TenantID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() != 1 {
		// The approvals gate runs a hook once per request, so this is a
		// campaign that is gone: keep the request pending, and say why.
		return fmt.Errorf("outbound: campaign %s of approval request %s is not awaiting approval", id, d.RequestID)
	}
	return nil
}
