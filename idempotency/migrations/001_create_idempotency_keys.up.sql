-- Idempotency keys: one row per (tenant, key). A row is either a claim in
-- progress (held under a lease by the request that runs the operation) or a
-- completed request with its stored response, kept until expires_at.
CREATE TABLE idempotency_keys (
    tenant_id        uuid        NOT NULL,
    key              text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    fingerprint      bytea       NOT NULL CHECK (length(fingerprint) = 32),
    state            text        NOT NULL CHECK (state IN ('in_progress', 'completed')),
    lease_token      uuid,
    lease_until      timestamptz,
    response_status  integer     CHECK (response_status BETWEEN 100 AND 999),
    response_headers jsonb,
    response_body    bytea,
    body_omitted     boolean     NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    expires_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key),
    CHECK (expires_at > created_at),
    -- A claim in progress has a holder and a lease; a completed entry has a
    -- response and neither.
    CHECK ((state = 'in_progress') = (lease_token IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK ((state = 'completed') = (response_status IS NOT NULL AND completed_at IS NOT NULL))
);

-- The sweeper deletes expired entries of every tenant (as the system role,
-- BYPASSRLS) in batches, oldest first. This index is deliberately not led by
-- tenant_id: it serves only that cross-tenant scan; every tenant-scoped
-- query goes through the primary key.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant ON idempotency_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
