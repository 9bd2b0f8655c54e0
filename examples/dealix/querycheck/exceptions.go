package querycheck

// Citus notes shared by several exceptions.
const (
	citusRLSOnly = "add tenant_id = $n (the request's tenant, already in the context) to the WHERE clause, " +
		"so Citus routes the statement to the tenant's shard instead of sending it to every shard; row-level security stays as the guard"
	serverRLSOnly = "a request-path statement of the reference server's own domain that relies on row-level security alone " +
		"(the transaction is scoped with set_config, the policy adds the tenant predicate)"
)

// Exceptions are the statements of the library and the reference server
// that touch a tenant table without naming tenant_id, each with why and
// what it needs when the tables are distributed by tenant_id. The first
// group is the library's; the second is the reference server's own
// domains, which rely on row-level security and are to name the tenant.
var Exceptions = []Exception{
	// The library: background work across tenants, by a global id.
	{
		Match:  "WITH picked AS ( SELECT id FROM platform.dlq_jobs WHERE state = 'available' AND queue = $1",
		Who:    "dlq worker fetch (dlq/worker.go), system role",
		Reason: "the claim takes a queue's next due jobs across all tenants, by priority, run_at and the global id, FOR UPDATE SKIP LOCKED: there is no tenant to name",
		Citus:  "a multi-shard SELECT … FOR UPDATE is refused: claim per shard (workers on each node, or a loop over a small coordinator table of tenants with due work), or keep dlq_jobs local on the coordinator (then an EnqueueTx in a request transaction commits by two-phase commit)",
	},
	{
		Match:  "UPDATE platform.dlq_jobs j SET state = 'completed', finalized_at = now(), lease_until = NULL FROM unnest($1::bigint[], $2::bigint[])",
		Who:    "dlq completer (dlq/completer.go), system role",
		Reason: "completions are batched by the job's global id and claim count",
		Citus:  "the key becomes (tenant_id, id): the worker knows each job's tenant, so the batch passes it too (unnest($1::uuid[], $2::bigint[], $3::bigint[]) … WHERE j.tenant_id = d.tenant_id AND j.id = d.id), a library change in dlq",
	},
	{
		Match:  "UPDATE platform.dlq_jobs SET state = $3, lease_until = NULL, run_at = now() + $4::bigint * interval '1 microsecond'",
		Who:    "dlq worker retry or dead-letter (dlq/worker.go), system role",
		Reason: "a failed attempt is recorded by the job's global id (and its claim)",
		Citus:  "add tenant_id = $n with the job's tenant, which the worker holds, so the update is routed to one shard (a library change in dlq)",
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
	// The library: a request-path statement that relies on row-level
	// security.
	{
		Match:  "FROM platform.tenancy_api_keys ORDER BY created_at DESC, id",
		Who:    "tenancy.APIKeys list (tenancy/apikey.go), app role",
		Reason: "lists the tenant's keys under row-level security alone",
		Citus:  citusRLSOnly + " (a library change in tenancy: WHERE tenant_id = $1)",
	},

	// The reference server's domains.
	{Match: "FROM dealix.cost_alerts WHERE day >= ($1::timestamptz AT TIME ZONE 'UTC')::date", Who: "scoring costs report (scoring/costs.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT lead_id::text, score, reason, model, cache_hit, correlation_id, scored_at FROM dealix.lead_scores WHERE lead_id = $1", Who: "lead score (scoring/costs.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT grouping(model)::int4 AS no_model", Who: "scoring costs report (scoring/costs.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT name, email, company, source, notes FROM dealix.leads WHERE id = $1", Who: "scoring worker (scoring/scoring.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "SELECT response FROM dealix.model_cache WHERE model = $1 AND input_hash = $2", Who: "scoring worker (scoring/scoring.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "SELECT EXISTS (SELECT FROM dealix.model_calls WHERE call_key = $1)", Who: "scoring worker (scoring/scoring.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "SELECT status FROM dealix.deals WHERE id = $1 FOR UPDATE", Who: "deal close (deals/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "UPDATE dealix.deals AS d SET status = $2, lost_reason = $3", Who: "deal close (deals/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT id::text, plan, amount_halalas, currency, status, provider, provider_invoice_id, payment_url, paid_at, created_at, updated_at FROM dealix.invoices WHERE id = $1", Who: "invoice (billing/billing.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "FROM dealix.invoices WHERE provider = $1 AND provider_invoice_id = $2 FOR UPDATE", Who: "payment webhook worker (billing/billing.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the tenant the verified event names", Citus: citusRLSOnly},
	{Match: "UPDATE dealix.invoices SET provider_invoice_id = $2, payment_url = $3", Who: "checkout (billing/billing.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "UPDATE dealix.invoices SET status = 'paid', payment_id = $2", Who: "payment webhook worker (billing/billing.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the event's tenant", Citus: citusRLSOnly},
	{Match: "SELECT id::text FROM dealix.leads WHERE email = $1 ORDER BY (source IN ('hubspot', 'calendly'))", Who: "intake workers (intake/intake.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the route's tenant", Citus: citusRLSOnly},
	{Match: "FROM dealix.leads WHERE ($1::text IS NULL OR status = $1)", Who: "leads list (leads/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT id::text, name, email, company, owner, source, notes, status, version, created_at, updated_at FROM dealix.leads WHERE id = $1", Who: "lead get (leads/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT version FROM dealix.leads WHERE id = $1 FOR UPDATE", Who: "lead patch (leads/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "UPDATE dealix.leads SET owner = $2, status = $3, version = version + 1", Who: "lead patch (leads/handlers.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT status, subject, body, recipients FROM dealix.outbound_campaigns WHERE id = $1", Who: "outbound send worker (outbound/deliver.go)", Reason: serverRLSOnly + "; the worker's transaction is scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "UPDATE dealix.outbound_campaigns SET status = $2, decided_by = $3", Who: "approval continuation (outbound/deliver.go), in the deciding transaction", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "UPDATE dealix.outbound_campaigns SET status = 'sent', sent_at = now()", Who: "outbound send worker (outbound/deliver.go)", Reason: serverRLSOnly + "; scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "UPDATE dealix.outbound_messages SET status = 'sent', provider_id = $3", Who: "outbound send worker (outbound/deliver.go)", Reason: serverRLSOnly + "; scoped to the job's tenant", Citus: citusRLSOnly},
	{Match: "FROM dealix.leads WHERE created_at >= $1 AND created_at < $2 ORDER BY created_at, id", Who: "weekly pack (reports/pack.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "FROM dealix.meetings WHERE status = 'booked' AND booked_at >= $1", Who: "weekly pack (reports/pack.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT count(*), coalesce(sum(cost_usd), 0)::text FROM dealix.model_calls WHERE at >= $1", Who: "weekly pack (reports/pack.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT model, count(*), sum(cost_usd)::text FROM dealix.model_calls WHERE at >= $1", Who: "weekly pack (reports/pack.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "SELECT count(*), count(DISTINCT campaign_id) FROM dealix.outbound_messages WHERE status = 'sent'", Who: "weekly pack (reports/pack.go)", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "FROM platform.approvals_requests WHERE status = 'pending' AND expires_at > now()", Who: "weekly pack (reports/pack.go), reading the library's table", Reason: serverRLSOnly, Citus: citusRLSOnly},
	{Match: "FROM platform.dlq_jobs WHERE state = 'dead' AND ($1 = '' OR queue = $1)", Who: "dead-letter admin (server/mount_admindlq.go), reading the library's table", Reason: serverRLSOnly, Citus: citusRLSOnly},
}
