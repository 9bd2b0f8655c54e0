package outbound

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/examples/dealix/internal/httpx"
	"github.com/dealix/platform/tenancy"
)

// Handler is the job handler of the send jobs (kind JobKind on the
// outbound queue).
func (s *Service) Handler() dlq.Handler { return dlq.Typed(s.deliver) }

// deliver sends a campaign's message to each recipient not yet sent, one
// by one, then marks the campaign sent. It runs in a worker with a context
// carrying the job's tenant; each step is a transaction of that tenant on
// the app role. A failure leaves the recipients sent so far recorded: the
// retry goes on from there.
func (s *Service) deliver(ctx context.Context, _ *dlq.Job, p sendJob) error {
	var (
		status     string
		msg        MessageContent
		recipients []string
	)
	err := tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT status, subject, body, recipients FROM dealix.outbound_campaigns WHERE tenant_id = $1 AND id = $2`,
			httpx.TenantOf(ctx), p.CampaignID).Scan(&status, &msg.Subject, &msg.Body, &recipients)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return dlq.Discard(fmt.Errorf("outbound: campaign %s does not exist", p.CampaignID))
	}
	if err != nil {
		return err
	}
	switch status {
	case StatusSent:
		return nil
	case StatusSending:
	default:
		// Only an unheld or approved campaign gets a job; anything else
		// must not be sent, whatever the job says.
		return dlq.Discard(fmt.Errorf("outbound: campaign %s is %s, not sending", p.CampaignID, status))
	}
	sent := 0
	for _, rcpt := range recipients {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A large campaign may not fit in one attempt's time: having made
		// progress, hand the job back before the deadline, without using
		// an attempt, and go on from the ledger next time.
		if deadline, ok := ctx.Deadline(); ok && sent > 0 && time.Until(deadline) < cmp.Or(s.YieldBefore, DefaultYieldBefore) {
			return dlq.Snooze(0)
		}
		did, err := s.deliverOne(ctx, p.CampaignID, rcpt, msg)
		if err != nil {
			return fmt.Errorf("outbound: campaign %s: %w", p.CampaignID, err)
		}
		if did {
			sent++
		}
	}
	return tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE dealix.outbound_campaigns SET status = 'sent', sent_at = now(), updated_at = now()
			WHERE tenant_id = $2 AND id = $1 AND status = 'sending'`, p.CampaignID, httpx.TenantOf(ctx))
		return err
	})
}

// DefaultYieldBefore is Service.YieldBefore's default.
const DefaultYieldBefore = 5 * time.Second

// MessageKey is the key of a campaign's message to one recipient.
func MessageKey(campaignID, recipient string) string { return campaignID + "/" + recipient }

// deliverOne sends the message to one recipient unless the ledger says it
// was sent. The ledger row is claimed (committed) before the send, and
// marked sent after it; a claim found still "sending" is a send that was
// cut short, tried again under the same key.
// It reports whether it sent.
func (s *Service) deliverOne(ctx context.Context, campaignID, rcpt string, msg MessageContent) (bool, error) {
	key := MessageKey(campaignID, rcpt)
	tenant, _ := tenancy.TenantFrom(ctx)
	claimed := false
	err := tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO dealix.outbound_messages (tenant_id, campaign_id, recipient, message_key, status)
			VALUES ($1, $2, $3, $4, 'sending')
			ON CONFLICT (tenant_id, campaign_id, recipient) DO UPDATE SET attempts = outbound_messages.attempts + 1
			WHERE outbound_messages.status = 'sending'
			RETURNING true`, tenant, campaignID, rcpt, key).Scan(&claimed)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // sent before
		}
		return err
	})
	if err != nil || !claimed {
		return false, err
	}
	providerID, err := s.Sender.Send(ctx, Message{Key: key, CampaignID: campaignID, Recipient: rcpt, Subject: msg.Subject, Body: msg.Body})
	if err != nil {
		return false, fmt.Errorf("send to %s: %w", rcpt, err)
	}
	return true, tenancy.InTx(ctx, s.DB, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE dealix.outbound_messages SET status = 'sent', provider_id = $3, sent_at = now()
			WHERE tenant_id = $4 AND campaign_id = $1 AND recipient = $2`, campaignID, rcpt, providerID, httpx.TenantOf(ctx))
		return err
	})
}
