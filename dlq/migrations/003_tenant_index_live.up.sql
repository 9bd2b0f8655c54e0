-- The tenant-scoped queries (Stats, and the dead-letter actions under a
-- tenant) read available, running and dead jobs only. Keeping completed
-- and discarded jobs out of the tenant index spares every completion an
-- index insert, and keeps the index the size of the live queue however
-- many finished jobs the retention holds.
DROP INDEX dlq_jobs_tenant;
CREATE INDEX dlq_jobs_tenant ON dlq_jobs (tenant_id, queue, state) WHERE state IN ('available', 'running', 'dead');
