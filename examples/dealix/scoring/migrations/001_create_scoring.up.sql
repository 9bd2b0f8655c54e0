-- Lead scoring and the cost ledger. Every table is tenant-scoped under
-- row-level security; the policies are applied by scoring.Migrate through
-- rlspolicy.Apply.

-- The latest score of each lead.
CREATE TABLE lead_scores (
    tenant_id      uuid        NOT NULL,
    lead_id        uuid        NOT NULL,
    score          integer     NOT NULL CHECK (score BETWEEN 0 AND 100),
    reason         text        NOT NULL CHECK (length(reason) <= 2000),
    model          text        NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    cache_hit      boolean     NOT NULL,
    correlation_id text        CHECK (length(correlation_id) <= 128),
    scored_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lead_id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);

-- The model's answers by input: a repeated input is answered from here and
-- costs nothing. Per tenant, so one tenant's inputs never answer (or time)
-- another's.
CREATE TABLE model_cache (
    tenant_id  uuid        NOT NULL,
    model      text        NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    input_hash text        NOT NULL CHECK (length(input_hash) = 64),
    response   jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, input_hash)
);

-- The cost ledger: one row per model call, cache hits included. call_key
-- makes the write of a retried job's call happen once.
CREATE TABLE model_calls (
    tenant_id      uuid          NOT NULL,
    id             bigint        GENERATED ALWAYS AS IDENTITY,
    at             timestamptz   NOT NULL DEFAULT now(),
    model          text          NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    purpose        text          NOT NULL CHECK (length(purpose) BETWEEN 1 AND 64),
    tokens_in      integer       NOT NULL CHECK (tokens_in >= 0),
    tokens_out     integer       NOT NULL CHECK (tokens_out >= 0),
    cost_usd       numeric(20,8) NOT NULL CHECK (cost_usd >= 0),
    cache_hit      boolean       NOT NULL,
    correlation_id text          CHECK (length(correlation_id) <= 128),
    call_key       text          NOT NULL CHECK (length(call_key) BETWEEN 1 AND 255),
    lead_id        uuid,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, call_key)
);
CREATE INDEX model_calls_tenant_at ON model_calls (tenant_id, at);

-- Each tenant's spend per UTC day. The upsert of this row serialises the
-- ledger writes of one tenant and day, so exactly one of them sees the
-- spend pass the alert threshold first.
CREATE TABLE cost_daily (
    tenant_id uuid          NOT NULL,
    day       date          NOT NULL,
    spend_usd numeric(20,8) NOT NULL CHECK (spend_usd >= 0),
    PRIMARY KEY (tenant_id, day)
);

-- The daily cost alerts: at most one per tenant and day (the key), posted
-- by a job; sent_at is set once the receiver has accepted the post.
CREATE TABLE cost_alerts (
    tenant_id     uuid          NOT NULL,
    day           date          NOT NULL,
    spend_usd     numeric(20,8) NOT NULL,
    threshold_usd numeric(20,8) NOT NULL,
    created_at    timestamptz   NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    PRIMARY KEY (tenant_id, day)
);
