-- Leads: the sales pipeline's entry point. Tenant-scoped under row-level
-- security; the policy itself is applied by leads.Migrate through
-- rlspolicy.Apply, so it is the library's one predicate.
CREATE TABLE leads (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email      text        CHECK (length(email) <= 320),
    company    text        CHECK (length(company) <= 200),
    owner      text        CHECK (length(owner) <= 200),
    source     text        CHECK (length(source) <= 100),
    notes      text        CHECK (length(notes) <= 5000),
    status     text        NOT NULL DEFAULT 'new'
                           CHECK (status IN ('new', 'contacted', 'qualified', 'won', 'lost')),
    version    integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- The list's order (newest first) and its cursor, per tenant.
CREATE INDEX leads_tenant_created ON leads (tenant_id, created_at DESC, id DESC);
CREATE INDEX leads_tenant_status ON leads (tenant_id, status, created_at DESC, id DESC);
CREATE INDEX leads_tenant_owner ON leads (tenant_id, owner, created_at DESC, id DESC);
