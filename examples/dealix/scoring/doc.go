// Package scoring is the reference server's lead scoring and model cost
// ledger.
//
// A lead created through the API is scored on the "scoring" queue:
// EnqueueTx, called in the transaction that creates the lead, enqueues the
// job, so the job exists exactly when the lead does. The job's worker asks
// a Model (Fake, deterministic and local, by default) for a score between
// 0 and 100, stores it (GET /api/v1/leads/{id}/score) and writes the call
// to the cost ledger: model, tokens in and out, cost (Config.Prices, per
// 1,000 tokens), cache hit, tenant, the creating request's correlation id,
// time. A model's answers are cached per tenant by a hash of their input,
// so a repeated input is answered without a call and costs nothing (the
// ledger records it as a cache hit, with no tokens billed and a zero
// cost). Two jobs with the same input running at the same moment may both
// miss the cache; both calls are then billed and recorded.
//
// Every table is under row-level security and every statement runs in a
// transaction scoped to the job's (or the request's) tenant on the app
// role.
//
// # Exactly once
//
// Jobs are delivered at least once. The ledger row's key is the job's id,
// so an attempt that runs again after its effects committed records
// nothing twice. Each ledger write also adds the call's cost to the
// tenant's spend of the (UTC, database clock) day in a row whose upsert
// serialises the writes of that tenant and day; the write that takes the
// spend past Config.AlertUSD records the day's alert under a unique
// (tenant, day) key and, in the same transaction, enqueues the job that
// posts it (the outbox). One alert per tenant and day therefore exists
// however many calls pass the threshold and however many workers write,
// and it is posted only if it was recorded. The post job holds the
// alert's row locked from its check to the commit of sent_at, so a retry
// or a second claim never posts an alert already accepted by its
// receiver; the only repeat left is a receiver that accepted and a commit
// that then failed, and each post carries the same X-Dealix-Alert-ID for a
// receiver to drop it.
//
// # Report
//
// Service.Costs serves GET /admin/costs?from=&to=: the tenant's spend per
// model, per UTC day (and per model within each day), the cache hit ratio
// and the day's alerts, for a window of at most 366 days (default: the
// last seven UTC days). Amounts are exact decimals (JSON numbers) in US
// dollars.
package scoring
