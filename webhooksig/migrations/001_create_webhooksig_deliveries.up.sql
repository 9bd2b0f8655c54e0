-- Delivery ids already received, for the replay guard. Not tenant-scoped:
-- a webhook is checked before any tenant is known (the sender, not a tenant's
-- user, calls), and ids are unique per verifier, which is the key.
CREATE TABLE webhooksig_deliveries (
    verifier    text        NOT NULL,
    delivery_id text        NOT NULL,
    received_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (verifier, delivery_id)
);

-- Sweep deletes by expiry.
CREATE INDEX webhooksig_deliveries_expires_at_idx ON webhooksig_deliveries (expires_at);
