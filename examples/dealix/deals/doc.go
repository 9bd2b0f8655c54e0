// Package deals is the reference server's deals domain and its showcase of
// the library's primitives composing in one transaction.
//
// Create, list (cursor paging, newest first) and get work like the leads
// domain: every statement runs in the request's tenant-scoped transaction
// on the app role, so row-level security keeps tenants apart and another
// tenant's deal is the same 404 as a missing one. Amounts are whole
// numbers of the currency's minor units.
//
// Closing a deal (POST /api/v1/deals/{id}/close, Idempotency-Key required,
// the idempotency middleware in transactional mode) commits in ONE
// transaction: the deal's status change (open to won, or lost with a
// reason), the start of its durable deal-closed run (Workflow.StartTx, run
// id RunID(deal), so a deal has at most one run) and the stored answer. A
// crash anywhere leaves all three or none: no deal is closed without its
// run, no run exists for an open deal, and a retry with the key gets the
// stored answer or, if nothing committed, closes the deal then.
//
// The run's steps each put their database effect in a durable.TxStep, which
// commits with the step's checkpoint, so each happens exactly once however
// often the process dies: the evidence record (who closed the deal, when,
// the amount, the request's correlation id and trace id), the follow-up
// task, and the follow-up jobs on the follow-up queue (dlq EnqueueTx, with
// a dedup key). The jobs' handler, a local fake sender, records each
// message in deal_followups_sent keyed by deal and message, so a job run
// again after a crash sends nothing twice.
//
// Runs serves the operators' view of the tenant's durable runs
// (/admin/runs): list, get with steps, cancel.
//
// Debug holds fault injection for crash tests (a kill at a named point, a
// delay inside each step); it is off unless set.
package deals
