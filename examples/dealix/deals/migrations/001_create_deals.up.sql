-- Deals and what closing one leaves behind. Every table is tenant-scoped
-- under row-level security; the policies are applied by deals.Migrate
-- through rlspolicy.Apply.

-- A deal: open until closed as won or lost, exactly once. The amount is in
-- the currency's minor units (halalas, cents), so no rounding ever
-- happens. Closing stamps who, when and the durable run that carries the
-- consequences; a deal is closed if and only if it names its run.
CREATE TABLE deals (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    lead_id     uuid,
    title       text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    amount      bigint      NOT NULL CHECK (amount BETWEEN 0 AND 1000000000000000),
    currency    text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    owner       text        CHECK (length(owner) <= 200),
    status      text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost')),
    lost_reason text        CHECK (length(lost_reason) <= 1000),
    closed_at   timestamptz,
    closed_by   text,
    run_id      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id),
    CHECK ((status = 'open') = (closed_at IS NULL)),
    CHECK ((status = 'open') = (run_id IS NULL)),
    CHECK ((status = 'open') = (closed_by IS NULL)),
    CHECK ((status = 'lost') = (lost_reason IS NOT NULL))
);

CREATE INDEX deals_tenant_created ON deals (tenant_id, created_at DESC, id DESC);
CREATE INDEX deals_tenant_status ON deals (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX deals_tenant_lead ON deals (tenant_id, lead_id) WHERE lead_id IS NOT NULL;

-- The evidence of a close, written once by the deal's run: who closed it,
-- when, for how much, and the request's correlation and trace ids, so the
-- close can be found in the logs and traces. The unique deal is a second
-- guard behind the run's exactly-once step: a duplicate would fail the
-- step loudly instead of being stored.
CREATE TABLE deal_evidence (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    deal_id        uuid        NOT NULL,
    run_id         text        NOT NULL,
    outcome        text        NOT NULL CHECK (outcome IN ('won', 'lost')),
    reason         text,
    closed_by      text        NOT NULL,
    closed_at      timestamptz NOT NULL,
    amount         bigint      NOT NULL,
    currency       text        NOT NULL,
    correlation_id text        NOT NULL,
    trace_id       text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, deal_id),
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)
);

-- Tasks for people; closing a deal creates its follow-up task.
CREATE TABLE deal_tasks (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    deal_id    uuid        NOT NULL,
    kind       text        NOT NULL,
    title      text        NOT NULL,
    assignee   text,
    status     text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    due_at     timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, deal_id, kind),
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)
);

-- The local fake sender's outbox: one row per follow-up message sent. A
-- job that runs again after a crash finds its row and sends nothing more.
-- repeats counts the handler's runs that found the row already
-- there, so a test can tell "sent once" from "sent once, attempted twice".
CREATE TABLE deal_followups_sent (
    tenant_id  uuid        NOT NULL,
    deal_id    uuid        NOT NULL,
    message    text        NOT NULL,
    recipient  text        NOT NULL,
    job_id     bigint      NOT NULL,
    repeats    integer     NOT NULL DEFAULT 0,
    sent_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, deal_id, message),
    FOREIGN KEY (tenant_id, deal_id) REFERENCES deals (tenant_id, id)
);
