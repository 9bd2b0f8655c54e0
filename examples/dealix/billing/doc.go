// Package billing is the reference server's checkout: a tenant buys a plan
// through a payment provider, and the provider's webhook, once verified,
// marks the invoice paid and the tenant's plan active.
//
// The flow, as data moves:
//
//  1. POST /api/v1/checkout {"plan": "growth"} (Idempotency-Key required,
//     transactional mode) inserts an invoice row in the request's tenant
//     transaction and creates the invoice at the Provider, whose id and
//     payment URL are stored on the row before the stored response commits
//     with it. The invoice's metadata carries the tenant and invoice ids,
//     so the provider's events name them.
//  2. The provider calls POST /webhooks/moyasar. Moyasar signs nothing: the
//     body's secret_token must equal the configured token (webhooksig's
//     Moyasar verifier; 401 otherwise, and nothing changes). The tenant
//     comes from the verified payload's metadata. In one transaction
//     scoped to that tenant the delivery is claimed in the replay store
//     (webhooksig.ReplayStore.ClaimTx) and a job is enqueued on the
//     webhooks queue (dlq.Client.EnqueueTx): a redelivered event is
//     acknowledged and enqueues nothing.
//  3. The job's handler (Worker) marks the invoice paid and sets the
//     tenant's plan, in one transaction; a payment event for an invoice
//     already paid changes nothing, and a failure event never un-pays an
//     invoice, whatever order the events arrive in.
//
// Provider is the payment provider's interface; Moyasar is a client of
// Moyasar's invoices API, and Fake is a local stand-in shaped like it that
// the server runs on a loopback listener in development: it "pays" each
// invoice after a short delay and delivers payment_paid to the server's
// webhook with the configured secret token.
package billing
