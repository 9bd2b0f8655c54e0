package outbound

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/tenancy"
)

// Message is one recipient's copy of a campaign.
type Message struct {
	// Key identifies the message: the same campaign and recipient always
	// have the same key. A Sender must treat a repeated key as the same
	// message.
	Key        string
	CampaignID string
	Recipient  string
	Subject    string
	Body       string
}

// Sender hands messages to whatever delivers them. Send runs with a
// context carrying the campaign's tenant (tenancy.TenantFrom). It must be
// idempotent on Message.Key: a worker that dies after Send returned but
// before the delivery was recorded sends the message again with the same
// key, and that must not reach the recipient twice (email providers take
// the key as their idempotency key). It returns the provider's id of the
// message.
type Sender interface {
	Send(ctx context.Context, m Message) (providerID string, err error)
}

// FakeSender is the local Sender: it delivers nothing and records each
// message in dealix.outbound_fake_mailbox, in the tenant's transaction on
// the app role. A repeated key finds the message already there and only
// counts the call, as a provider honouring an idempotency key would.
type FakeSender struct {
	// DB is the app role's pool.
	DB tenancy.Beginner
}

// Send implements Sender.
func (f *FakeSender) Send(ctx context.Context, m Message) (string, error) {
	tenant, ok := tenancy.TenantFrom(ctx)
	if !ok {
		return "", tenancy.ErrNoTenant
	}
	var id string
	err := tenancy.InTx(ctx, f.DB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO dealix.outbound_fake_mailbox
			(tenant_id, message_key, recipient, subject, body)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (tenant_id, message_key) DO UPDATE SET calls = outbound_fake_mailbox.calls + 1
			RETURNING id::text`, tenant, m.Key, m.Recipient, m.Subject, m.Body).Scan(&id)
	})
	if err != nil {
		return "", fmt.Errorf("outbound: fake sender: %w", err)
	}
	return "fake-" + id, nil
}
