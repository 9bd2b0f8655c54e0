// Package outbound is the reference server's outbound campaigns: one
// message to a list of recipients, held for a person's approval when the
// approvals policy says so (more than 50 recipients, a risk score of 0.7
// or more, or an action marked critical), and sent by a worker on the
// outbound queue.
//
// The request that creates a campaign writes the campaign row and either
// the approval request (held: 202) or the send job (not held: 201) in one
// transaction, the request's idempotency transaction. An approval writes
// the send job in the deciding transaction (OnApproved, an
// approvals.Hook), so an approved campaign is always sent and a rejected
// one never is.
//
// The worker sends recipient by recipient through a Sender. Each
// recipient's row in the delivery ledger (dealix.outbound_messages, one
// per tenant, campaign and recipient) is claimed before the message goes
// to the Sender and marked sent after it, so a retried job skips the
// recipients already sent; the one recipient whose send was in flight when
// a worker died is sent again with the same Message.Key, which the Sender
// treats as the same message (a provider's idempotency key). Each
// recipient therefore gets exactly one message. FakeSender is the local
// fake: it records each message in dealix.outbound_fake_mailbox. A
// campaign too large for one attempt's time hands itself back to the queue
// (dlq.Snooze) before the deadline and goes on from the ledger.
//
// A held campaign whose approval request expires undecided is shown as
// expired and is never sent: the gate refuses to decide it.
//
// ApprovalsAdmin serves the tenant admin's side of the approvals gate:
// list (pending first), get, approve, reject and the audit trail.
package outbound
