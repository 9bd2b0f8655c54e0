-- PostgreSQL rebuilds every CHECK constraint's expression from its stored
-- text for each INSERT statement: the seven checks of 001 were about a
-- quarter of the database's time for a transaction that writes one entry.
-- The store validates the same rules before it writes: keys are 1-255
-- visible characters (ValidKey), fingerprints are SHA-256 sums, states and leases are set together by its statements only,
-- statuses are HTTP statuses, and the TTL is positive. NOT NULL, the
-- primary key and row-level security stay.
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_key_check,
    DROP CONSTRAINT idempotency_keys_fingerprint_check,
    DROP CONSTRAINT idempotency_keys_state_check,
    DROP CONSTRAINT idempotency_keys_response_status_check,
    DROP CONSTRAINT idempotency_keys_check,
    DROP CONSTRAINT idempotency_keys_check1,
    DROP CONSTRAINT idempotency_keys_check2;
