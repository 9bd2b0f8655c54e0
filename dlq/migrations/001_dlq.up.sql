-- Work queue jobs. A job is 'available' (runnable once run_at has come:
-- before that it is scheduled, or retrying when attempt > 0), 'running'
-- under a lease held by one worker, then 'completed', 'dead' (attempts used
-- up, or discarded by its handler; kept for re-drive), or 'discarded' (a
-- dead job an operator gave up on). Finished rows are deleted after a
-- retention period.
CREATE SEQUENCE dlq_jobs_id_seq;

CREATE TABLE dlq_jobs (
    id           bigint      NOT NULL DEFAULT nextval('dlq_jobs_id_seq') PRIMARY KEY,
    tenant_id    uuid        NOT NULL,
    queue        text        NOT NULL CHECK (char_length(queue) BETWEEN 1 AND 128),
    kind         text        NOT NULL DEFAULT '' CHECK (char_length(kind) <= 128),
    payload      jsonb       NOT NULL DEFAULT '{}',
    state        text        NOT NULL DEFAULT 'available'
                 CHECK (state IN ('available', 'running', 'completed', 'dead', 'discarded')),
    priority     smallint    NOT NULL DEFAULT 0,
    attempt      integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer     NOT NULL CHECK (max_attempts >= 1),
    run_at       timestamptz NOT NULL,
    dedup_key    text        CHECK (char_length(dedup_key) BETWEEN 1 AND 255),
    errors       jsonb       NOT NULL DEFAULT '[]',
    lease_until  timestamptz,
    created_at   timestamptz NOT NULL,
    attempted_at timestamptz,
    finalized_at timestamptz,
    -- A running job is leased; no other job is.
    CHECK ((state = 'running') = (lease_until IS NOT NULL)),
    CHECK ((state IN ('completed', 'dead', 'discarded')) = (finalized_at IS NOT NULL))
);
ALTER SEQUENCE dlq_jobs_id_seq OWNED BY dlq_jobs.id;

-- Dedup: one job per (tenant, queue, key) for as long as the row exists.
CREATE UNIQUE INDEX dlq_jobs_dedup ON dlq_jobs (tenant_id, queue, dedup_key) WHERE dedup_key IS NOT NULL;
-- Tenant-scoped listing.
CREATE INDEX dlq_jobs_tenant ON dlq_jobs (tenant_id, queue, state);

-- The following indexes are deliberately not led by tenant_id: they serve
-- only the workers, the rescuer, the cleaner and the stats, which run as the
-- system role (BYPASSRLS) across tenants.
-- Fetch: the next available jobs of one queue, most urgent first.
CREATE INDEX dlq_jobs_fetch ON dlq_jobs (queue, priority DESC, run_at, id) WHERE state = 'available';
-- Rescue: running jobs whose lease has expired.
CREATE INDEX dlq_jobs_lease ON dlq_jobs (lease_until) WHERE state = 'running';
-- Cleanup, re-drive and stats of finished jobs.
CREATE INDEX dlq_jobs_finalized ON dlq_jobs (state, queue, finalized_at) WHERE finalized_at IS NOT NULL;

ALTER TABLE dlq_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE dlq_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY dlq_jobs_tenant ON dlq_jobs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
