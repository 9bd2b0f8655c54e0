-- Running jobs leave the tenant index too: it now holds the jobs waiting
-- for a worker (available) or for an operator (dead). A claim (available
-- -> running) then inserts into the primary key and the lease index only,
-- and a completion (running -> completed) into the primary key and the
-- finalized index only. Stats count a tenant's running jobs through the
-- lease index, which holds every running job (as many as the workers'
-- concurrency) and nothing else.
DROP INDEX dlq_jobs_tenant;
CREATE INDEX dlq_jobs_tenant ON dlq_jobs (tenant_id, queue, state) WHERE state IN ('available', 'dead');
