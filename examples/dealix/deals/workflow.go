package deals

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/tenancy"
)

// WorkflowName is the durable workflow a close starts.
const WorkflowName = "deal-closed"

// FollowupKind is the kind of the follow-up jobs on the follow-up queue.
const FollowupKind = "deal.followup"

// RunID is the id of the deal-closed run of the deal dealID. It is derived
// from the deal, and a run id is unique in its tenant, so a deal can only
// ever have one run, however often its close is retried.
func RunID(dealID string) string { return "deal-closed-" + dealID }

// ClosedInput is the deal-closed run's input: everything the evidence
// needs, captured by the closing request (the run has no request of its
// own to ask).
type ClosedInput struct {
	DealID        string    `json:"deal_id"`
	Title         string    `json:"title"`
	Outcome       string    `json:"outcome"`
	Reason        *string   `json:"reason,omitempty"`
	Owner         *string   `json:"owner,omitempty"`
	ClosedBy      string    `json:"closed_by"`
	ClosedAt      time.Time `json:"closed_at"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	CorrelationID string    `json:"correlation_id"`
	TraceID       string    `json:"trace_id"`
}

// ClosedOutput is what the run did.
type ClosedOutput struct {
	EvidenceID string  `json:"evidence_id"`
	TaskID     string  `json:"task_id"`
	Followups  []int64 `json:"followup_jobs"`
}

// Followup is the payload of a follow-up job.
type Followup struct {
	DealID    string `json:"deal_id"`
	Message   string `json:"message"`
	Recipient string `json:"recipient"`
}

// followups are the messages a close sends: for a won deal a thank-you and
// the hand-over to onboarding, for a lost one a debrief with the owner.
func followups(in ClosedInput) []Followup {
	recipient := "sales-team"
	if in.Owner != nil && *in.Owner != "" {
		recipient = *in.Owner
	}
	msgs := []string{"loss-debrief"}
	if in.Outcome == "won" {
		msgs = []string{"thank-you", "onboarding-handoff"}
	}
	out := make([]Followup, len(msgs))
	for i, m := range msgs {
		out[i] = Followup{DealID: in.DealID, Message: m, Recipient: recipient}
	}
	return out
}

// stepRetry retries a step's transaction on a passing failure (a lost
// connection, a serialisation failure) before the run gives up.
var stepRetry = durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5})

// txStep is durable.TxStep with the debug knobs around it: the delay and
// the crash point inside the step's transaction, the crash point after
// its checkpoint.
func txStep[T any](s *Service, ctx context.Context, name string, fn func(ctx context.Context, tx pgx.Tx, tenant string) (T, error)) (T, error) {
	v, err := durable.TxStep(ctx, name, func(ctx context.Context, tx pgx.Tx) (T, error) {
		tenant, ok := tenancy.TenantFrom(ctx)
		if !ok {
			var zero T
			return zero, durable.Permanent(tenancy.ErrNoTenant)
		}
		v, err := fn(ctx, tx, tenant)
		if err != nil {
			return v, err
		}
		s.pause(ctx)
		s.crashAt(ctx, StepCrashPoint(name))
		return v, nil
	}, stepRetry)
	if err == nil {
		s.crashAt(ctx, AfterStepCrashPoint(name))
	}
	return v, err
}

// runClosed is the deal-closed workflow. Each step's database effect is a
// TxStep: its writes commit with its checkpoint, so after any crash the
// step has either happened once (and is replayed from its checkpoint) or
// not at all (and runs again).
func (s *Service) runClosed(ctx context.Context, in ClosedInput) (ClosedOutput, error) {
	var out ClosedOutput
	var err error
	out.EvidenceID, err = txStep(s, ctx, StepEvidence, func(ctx context.Context, tx pgx.Tx, tenant string) (string, error) {
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO dealix.deal_evidence
			(tenant_id, deal_id, run_id, outcome, reason, closed_by, closed_at, amount, currency, correlation_id, trace_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id::text`,
			tenant, in.DealID, RunID(in.DealID), in.Outcome, in.Reason, in.ClosedBy, in.ClosedAt,
			in.Amount, in.Currency, in.CorrelationID, in.TraceID).Scan(&id)
		return id, err
	})
	if err != nil {
		return out, err
	}
	out.TaskID, err = txStep(s, ctx, StepTask, func(ctx context.Context, tx pgx.Tx, tenant string) (string, error) {
		title := "Follow up on the won deal: " + in.Title
		if in.Outcome == "lost" {
			title = "Debrief the lost deal: " + in.Title
		}
		var id string
		// Due two days after the close, on the database's clock.
		err := tx.QueryRow(ctx, `INSERT INTO dealix.deal_tasks (tenant_id, deal_id, kind, title, assignee, due_at)
			VALUES ($1, $2, 'follow-up', $3, $4, now() + interval '2 days') RETURNING id::text`,
			tenant, in.DealID, title, in.Owner).Scan(&id)
		return id, err
	})
	if err != nil {
		return out, err
	}
	out.Followups, err = txStep(s, ctx, StepFollowups, func(ctx context.Context, tx pgx.Tx, _ string) ([]int64, error) {
		var ids []int64
		for _, f := range followups(in) {
			// The jobs commit with the step's checkpoint; the dedup key
			// is a second guard should the step ever run twice.
			ins, err := s.cfg.Jobs.EnqueueTx(ctx, tx, dlq.JobParams{
				Queue: s.cfg.FollowupQueue, Kind: FollowupKind, Payload: f,
				DedupKey: "deal-followup:" + f.DealID + ":" + f.Message,
			})
			if err != nil {
				return nil, fmt.Errorf("enqueue follow-up %s: %w", f.Message, err)
			}
			ids = append(ids, ins.ID)
		}
		return ids, nil
	})
	return out, err
}

// FollowupHandler is the follow-up queue's handler for FollowupKind: a
// local fake sender that records each message in
// dealix.deal_followups_sent. A job runs at least once (again after a
// crash before it was marked done); the message's row, keyed by deal and
// message like a provider's idempotency key, makes it sent once.
func (s *Service) FollowupHandler() dlq.Handler {
	return dlq.Typed(func(ctx context.Context, job *dlq.Job, f Followup) error {
		err := tenancy.InTx(ctx, s.cfg.DB, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO dealix.deal_followups_sent (tenant_id, deal_id, message, recipient, job_id)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (tenant_id, deal_id, message) DO UPDATE SET repeats = deal_followups_sent.repeats + 1`,
				job.Tenant, f.DealID, f.Message, f.Recipient, job.ID)
			return err
		})
		if err != nil {
			return err
		}
		s.crashAt(ctx, CrashFollowupSent)
		return nil
	})
}
