-- The replay guard records what became of a delivery, not only that it was
-- seen: a delivery is 'in_progress' while a handler runs it, held under a
-- lease (lease_token, lease_until), and 'completed' once the handler answered
-- 2xx. Only a completed delivery is a replay; an in-progress one whose lease
-- ran out (its holder died) can be claimed again, and a failed one is
-- deleted, so the sender's retry is processed.
--
-- Rows written before this migration were claims without a state. They are
-- kept as completed: the old guard refused their retries too, and treating
-- them as in progress could run a delivery that was processed twice.
ALTER TABLE webhooksig_deliveries
    ADD COLUMN state        text        NOT NULL DEFAULT 'completed',
    ADD COLUMN lease_token  uuid,
    ADD COLUMN lease_until  timestamptz,
    ADD COLUMN completed_at timestamptz;

UPDATE webhooksig_deliveries SET completed_at = received_at;

-- Every statement sets the state explicitly from now on.
ALTER TABLE webhooksig_deliveries ALTER COLUMN state DROP DEFAULT;

-- The invariants the guard's promises rest on: an in-progress delivery has a
-- holder and a lease, a completed one has neither and a completion time.
ALTER TABLE webhooksig_deliveries
    ADD CONSTRAINT webhooksig_deliveries_state_check CHECK (state IN ('in_progress', 'completed')),
    ADD CONSTRAINT webhooksig_deliveries_lease_check
        CHECK ((state = 'in_progress') = (lease_token IS NOT NULL AND lease_until IS NOT NULL)),
    ADD CONSTRAINT webhooksig_deliveries_completed_check
        CHECK ((state = 'completed') = (completed_at IS NOT NULL));
