-- API keys issued by the tenancy package. Only a SHA-256 hash of each key is
-- stored; the key itself is shown once, when it is created.
CREATE TABLE tenancy_api_keys (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL,
    prefix       text        NOT NULL CHECK (length(prefix) BETWEEN 1 AND 128),
    key_hash     bytea       NOT NULL CHECK (octet_length(key_hash) = 32),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes       text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, prefix)
);

ALTER TABLE tenancy_api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_api_keys FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON tenancy_api_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid);
