-- The two rules that guard the stored data come back as constraints, so a
-- statement that would break them fails instead of leaving an entry the
-- store cannot serve: an entry in progress has a holder and a lease, and
-- the lease never outlives the entry (Renew moves expires_at with it, so
-- an entry never expires under a live holder); a completed entry has its
-- response. The other checks dropped by 002 stay with the store (ValidKey,
-- SHA-256 fingerprints, HTTP statuses, a positive TTL). Their price is
-- paid per statement that writes an entry (PostgreSQL prepares each CHECK
-- expression anew for every INSERT and UPDATE); BenchmarkStateChecks
-- measures it against the same requests on a table without them.

-- An older store could renew a lease past the entry's expiry: move such
-- expiries to the lease's end before the rule is checked.
UPDATE idempotency_keys SET expires_at = lease_until
WHERE state = 'in_progress' AND lease_until > expires_at;

ALTER TABLE idempotency_keys
    ADD CONSTRAINT idempotency_keys_in_progress_has_lease CHECK (
        state <> 'in_progress'
        OR (lease_token IS NOT NULL AND lease_until IS NOT NULL AND lease_until <= expires_at)),
    ADD CONSTRAINT idempotency_keys_completed_has_response CHECK (
        state <> 'completed'
        OR (response_status IS NOT NULL AND response_headers IS NOT NULL
            AND response_body IS NOT NULL AND completed_at IS NOT NULL));
