-- Durable runs: one row per run of a registered workflow.
--
-- ready_at is when the run may next be claimed by a worker: its creation
-- time while pending, its lease expiry while running, its wake-up time while
-- sleeping, its signal deadline while waiting ('infinity' without one) and
-- NULL once finished. attempt counts claims; a worker's checkpoints are
-- fenced on the attempt it claimed, so a worker that lost its lease can
-- never write again.
CREATE TABLE durable_runs (
    tenant_id    uuid        NOT NULL,
    id           text        NOT NULL CHECK (length(id) BETWEEN 1 AND 200),
    workflow     text        NOT NULL,
    status       text        NOT NULL
                 CHECK (status IN ('pending', 'running', 'sleeping', 'waiting', 'completed', 'failed', 'cancelled')),
    input        jsonb       NOT NULL,
    output       jsonb,
    error        text,
    owner        text,
    attempt      bigint      NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    ready_at     timestamptz,
    wake_at      timestamptz,
    wait_signal  text,
    wait_seq     integer,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    CHECK ((status IN ('completed', 'failed', 'cancelled')) = (finished_at IS NOT NULL))
);

-- Listing a tenant's runs, optionally by status, oldest first.
CREATE INDEX durable_runs_list ON durable_runs (tenant_id, created_at, id);
CREATE INDEX durable_runs_status_list ON durable_runs (tenant_id, status, created_at, id);
-- The workers' claim scan runs as the system role across all tenants, so
-- this one index is led by the claim time rather than the tenant.
CREATE INDEX durable_runs_ready ON durable_runs (ready_at) WHERE ready_at IS NOT NULL;
-- The retention sweep, also across tenants.
CREATE INDEX durable_runs_finished ON durable_runs (finished_at) WHERE finished_at IS NOT NULL;

ALTER TABLE durable_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE durable_runs FORCE ROW LEVEL SECURITY;
CREATE POLICY durable_runs_tenant ON durable_runs
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Checkpoints: the recorded outcome of each step of a run, by sequence
-- number. A replay returns these instead of running the step again.
CREATE TABLE durable_steps (
    tenant_id   uuid        NOT NULL,
    run_id      text        NOT NULL,
    seq         integer     NOT NULL CHECK (seq >= 1),
    kind        text        NOT NULL CHECK (kind IN ('step', 'tx', 'sleep', 'signal')),
    name        text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('completed', 'failed', 'timeout')),
    output      jsonb,
    error       text,
    attempts    integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES durable_runs (tenant_id, id) ON DELETE CASCADE
);

ALTER TABLE durable_steps ENABLE ROW LEVEL SECURITY;
ALTER TABLE durable_steps FORCE ROW LEVEL SECURITY;
CREATE POLICY durable_steps_tenant ON durable_steps
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);

-- Signals sent to a run by name. A wait consumes the oldest unconsumed
-- signal of its name and records which step consumed it.
CREATE TABLE durable_signals (
    tenant_id    uuid        NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    run_id       text        NOT NULL,
    name         text        NOT NULL,
    payload      jsonb       NOT NULL,
    consumed_seq integer,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES durable_runs (tenant_id, id) ON DELETE CASCADE
);

CREATE INDEX durable_signals_pending
    ON durable_signals (tenant_id, run_id, name, id) WHERE consumed_seq IS NULL;

ALTER TABLE durable_signals ENABLE ROW LEVEL SECURITY;
ALTER TABLE durable_signals FORCE ROW LEVEL SECURITY;
CREATE POLICY durable_signals_tenant ON durable_signals
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
