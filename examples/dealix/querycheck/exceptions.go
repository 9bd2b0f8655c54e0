package querycheck

// Exceptions are the statements of the library and the reference server
// that touch a tenant table without naming tenant_id, each with why and
// what it needs when the tables are distributed by tenant_id. All are the
// library's: the reference server's own statements name the tenant.
var Exceptions = []Exception{
	// The library: background work across tenants, by a global id.
	{
		Match:  "WHERE j.id = ANY(ARRAY( SELECT id FROM platform.dlq_jobs WHERE state = 'available' AND queue = $1",
		Who:    "dlq worker fetch (dlq/worker.go), system role",
		Reason: "the claim takes a queue's next due jobs across all tenants, by priority, run_at and the global id, FOR UPDATE SKIP LOCKED: there is no tenant to name",
		Citus:  "a multi-shard SELECT … FOR UPDATE is refused: claim per shard (workers on each node, or a loop over a small coordinator table of tenants with due work), or keep dlq_jobs local on the coordinator (then an EnqueueTx in a request transaction commits by two-phase commit)",
	},
	{
		Match:  "WITH expired AS ( SELECT id FROM platform.dlq_jobs WHERE state = 'running' AND lease_until < now()",
		Who:    "dlq lease rescue (dlq/maintain.go), system role",
		Reason: "the sweep returns jobs whose lease ran out, whatever their tenant",
		Citus:  "FOR UPDATE SKIP LOCKED across shards is refused: run it per shard (on each node), as the claim",
	},
	{
		Match:  "DELETE FROM platform.dlq_jobs WHERE id IN ( SELECT id FROM platform.dlq_jobs WHERE (state IN ('completed', 'discarded')",
		Who:    "dlq retention sweeper (dlq/sweeper.go), system role",
		Reason: "retention deletes finished jobs of every tenant, in batches by global id",
		Citus:  "a multi-shard DELETE; the LIMIT in the subquery makes Citus plan it through the coordinator: run the batch per shard instead, or delete by (tenant_id, id) pairs",
	},
	{
		Match:  "DELETE FROM platform.durable_runs WHERE (tenant_id, id) IN ( SELECT tenant_id, id FROM platform.durable_runs WHERE finished_at <",
		Who:    "durable retention sweeper (durable/sweeper.go), system role",
		Reason: "deletes finished runs of every tenant; the key pairs are read back from the table itself, so no tenant is fixed",
		Citus:  "a multi-shard DELETE whose LIMIT subquery Citus plans through the coordinator: run the batch per shard",
	},
	{
		Match:  "WITH due AS ( SELECT tenant_id, key FROM platform.idempotency_keys WHERE expires_at <= now()",
		Who:    "idempotency sweeper (idempotency/sweeper.go), system role",
		Reason: "deletes expired keys of every tenant (FOR UPDATE SKIP LOCKED in the subquery)",
		Citus:  "multi-shard FOR UPDATE is refused: run the sweep per shard (on each node)",
	},
	{
		Match:  "WITH due AS ( SELECT tenant_id, id FROM platform.durable_runs WHERE ready_at <= now()",
		Who:    "durable run claim (durable), system role",
		Reason: "claims the due runs of the registered workflows across tenants, FOR UPDATE SKIP LOCKED",
		Citus:  "as dlq's fetch: claim per shard, or keep the durable tables local to the coordinator (a StartTx in a request transaction then commits by two-phase commit)",
	},
	{
		Match:  "FROM (SELECT NULLIF(current_setting('app.tenant_id', true), '') AS tenant, now() AS now) s LEFT JOIN platform.idempotency_keys k",
		Who:    "idempotency key lookup and lock (idempotency), app role, in the request's tenant transaction",
		Reason: "the tenant is taken from the transaction's app.tenant_id setting (k.tenant_id = s.tenant::uuid), so the key is read under exactly the scope the transaction has; it is compared with the context's tenant ($1), but not as the key's filter",
		Citus:  "Citus routes on a parameter or constant, not on current_setting: filter the key by k.tenant_id = $1::uuid (the context's tenant, which the statement already receives) — an idempotency change",
	},
}
