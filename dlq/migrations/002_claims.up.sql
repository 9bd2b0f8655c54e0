-- claims counts the times a job was claimed by a worker. Every fetch adds
-- one and nothing ever lowers it (a re-drive resets attempt, not claims),
-- so (id, claims) names one claim of a job for good: the outcome writes of
-- a worker that lost its lease are fenced by it and can never land on a
-- later claim, even one that runs under the same attempt number after a
-- re-drive.
ALTER TABLE dlq_jobs ADD COLUMN claims bigint NOT NULL DEFAULT 0 CHECK (claims >= 0);
