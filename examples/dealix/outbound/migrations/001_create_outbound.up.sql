-- Outbound campaigns and their messages. Tenant-scoped under row-level
-- security; the policies are applied by outbound.Migrate through
-- rlspolicy.Apply.

-- A campaign: one message to a list of recipients. Its status moves
-- pending_approval -> sending -> sent, or pending_approval -> rejected;
-- an unheld campaign starts at sending.
CREATE TABLE outbound_campaigns (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    subject      text        NOT NULL CHECK (length(subject) BETWEEN 1 AND 998),
    body         text        NOT NULL CHECK (length(body) BETWEEN 1 AND 100000),
    recipients   text[]      NOT NULL CHECK (cardinality(recipients) BETWEEN 1 AND 10000),
    risk         double precision NOT NULL CHECK (risk >= 0 AND risk <= 1),
    critical     boolean     NOT NULL DEFAULT false,
    status       text        NOT NULL
                             CHECK (status IN ('pending_approval', 'sending', 'sent', 'rejected')),
    approval_id  uuid,
    requested_by text        NOT NULL,
    decided_by   text,
    decided_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX outbound_campaigns_tenant_created ON outbound_campaigns (tenant_id, created_at DESC, id DESC);

-- The delivery ledger: one row per recipient of a campaign, claimed before
-- the message is handed to the sender and marked sent after. The key makes
-- a retried job find the recipients already done.
CREATE TABLE outbound_messages (
    tenant_id   uuid        NOT NULL,
    campaign_id uuid        NOT NULL,
    recipient   text        NOT NULL,
    message_key text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('sending', 'sent')),
    provider_id text,
    attempts    integer     NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    PRIMARY KEY (tenant_id, campaign_id, recipient),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES outbound_campaigns (tenant_id, id) ON DELETE CASCADE
);

-- The local fake sender's mailbox: what a recipient received. A repeated
-- message key is the same message (a provider's idempotency key): it adds
-- to calls, never a second message.
CREATE TABLE outbound_fake_mailbox (
    tenant_id    uuid        NOT NULL,
    message_key  text        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    recipient    text        NOT NULL,
    subject      text        NOT NULL,
    body         text        NOT NULL,
    calls        integer     NOT NULL DEFAULT 1,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_key)
);
