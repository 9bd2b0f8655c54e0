-- Leads that arrive through intake webhooks (HubSpot contacts, Calendly
-- invitees) are upserted by email: one such lead per tenant and address.
-- The index is partial so that leads typed in through the API keep their
-- freedom to share an address; the intake upsert names the same predicate
-- in its ON CONFLICT clause.
CREATE UNIQUE INDEX leads_tenant_intake_email ON leads (tenant_id, email)
    WHERE source IN ('hubspot', 'calendly');

-- Meetings booked through Calendly, one per invitee. Tenant-scoped under
-- row-level security; the policy is applied by intake.Migrate.
CREATE TABLE meetings (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    lead_id      uuid        NOT NULL,
    -- Calendly's invitee URI: the meeting's identity across its events.
    invitee_uri  text        NOT NULL CHECK (length(invitee_uri) BETWEEN 1 AND 500),
    event_uri    text        CHECK (length(event_uri) <= 500),
    name         text        CHECK (length(name) <= 200),
    email        text        NOT NULL CHECK (length(email) <= 320),
    status       text        NOT NULL CHECK (status IN ('booked', 'canceled')),
    start_time   timestamptz,
    end_time     timestamptz,
    cancel_reason text       CHECK (length(cancel_reason) <= 1000),
    booked_at    timestamptz,
    canceled_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, invitee_uri),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX meetings_tenant_lead ON meetings (tenant_id, lead_id);
CREATE INDEX meetings_tenant_start ON meetings (tenant_id, start_time);
