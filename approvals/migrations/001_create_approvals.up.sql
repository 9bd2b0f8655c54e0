-- Approval requests: one row per risky action held for a human decision.
CREATE TABLE approvals_requests (
    tenant_id        uuid             NOT NULL,
    id               uuid             NOT NULL DEFAULT gen_random_uuid(),
    seq              bigint           GENERATED ALWAYS AS IDENTITY,
    kind             text             NOT NULL,
    requested_by     text             NOT NULL,
    dedupe_key       text             NOT NULL,
    fingerprint      text             NOT NULL,
    idempotency_key  text,
    reasons          text[]           NOT NULL,
    recipients       integer          NOT NULL CHECK (recipients >= 0),
    risk             double precision NOT NULL CHECK (risk >= 0 AND risk <= 1),
    critical         boolean          NOT NULL,
    payload          jsonb            NOT NULL,
    status           text             NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    created_at       timestamptz      NOT NULL,
    expires_at       timestamptz      NOT NULL,
    decided_by       text,
    decided_at       timestamptz,
    decision_comment text,
    PRIMARY KEY (tenant_id, id),
    CHECK (expires_at > created_at),
    CHECK ((status IN ('approved', 'rejected')) = (decided_by IS NOT NULL AND decided_at IS NOT NULL))
);

-- Asking twice for the same action returns the same request, unless the
-- first one expired undecided: then a new one may be opened.
CREATE UNIQUE INDEX approvals_requests_dedupe
    ON approvals_requests (tenant_id, dedupe_key) WHERE status <> 'expired';
-- Listing newest first, optionally by status.
CREATE INDEX approvals_requests_list ON approvals_requests (tenant_id, seq);
CREATE INDEX approvals_requests_status_list ON approvals_requests (tenant_id, status, seq);
-- The sweeper's scan: only pending rows, by expiry.
CREATE INDEX approvals_requests_pending_expiry
    ON approvals_requests (tenant_id, expires_at) WHERE status = 'pending';

ALTER TABLE approvals_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY approvals_requests_tenant ON approvals_requests
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- The audit trail: every decide attempt, accepted or refused, and every
-- expiry by the sweeper. Rows are only ever inserted.
CREATE TABLE approvals_audit (
    tenant_id     uuid        NOT NULL,
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    request_id    uuid        NOT NULL,
    actor         text        NOT NULL,
    action        text        NOT NULL CHECK (action IN ('approve', 'reject', 'expire')),
    result        text        NOT NULL
                  CHECK (result IN ('accepted', 'replayed', 'conflict', 'expired', 'self_approval', 'not_found')),
    status_after  text        NOT NULL,
    comment       text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE INDEX approvals_audit_request ON approvals_audit (tenant_id, request_id, id);

ALTER TABLE approvals_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE approvals_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY approvals_audit_tenant ON approvals_audit
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
