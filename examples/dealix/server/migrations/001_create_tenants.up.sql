-- The server's tenants: one row per customer, read under row-level
-- security like every tenant table (a tenant sees its own row). The
-- policy is applied by server.Migrate through rlspolicy.Apply.
CREATE TABLE tenants (
    tenant_id  uuid        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    plan       text        NOT NULL REFERENCES plans (id),
    created_at timestamptz NOT NULL DEFAULT now()
);
