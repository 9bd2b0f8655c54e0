-- A checkpoint updates its run's row without changing an indexed column
-- (the lease is renewed at most once per heartbeat), so PostgreSQL can
-- update it in place (a HOT update: no new index entries) when the row's
-- page has room for the new version. Leave that room in every page.
ALTER TABLE durable_runs SET (fillfactor = 80);
