-- Deleting a run (the Sweeper, an operator) deletes its signals through
-- the foreign key, which looks them up by (tenant_id, run_id). The
-- pending-signal index is partial and cannot serve that lookup, so each
-- deleted run scanned the whole signal table. This index serves it.
CREATE INDEX durable_signals_run ON durable_signals (tenant_id, run_id);
