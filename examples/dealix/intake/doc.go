// Package intake is the reference server's inbound integrations: HubSpot
// contacts become leads and Calendly bookings become meetings on them.
//
// Each webhook is mounted per tenant, /webhooks/hubspot/{tenant} and
// /webhooks/calendly/{tenant}: the tenant is the one whose URL the
// tenant's administrator registered at the provider. A request is checked
// in this order: the path's tenant must be a UUID (404 otherwise), the
// signature must verify (webhooksig: HubSpot v3 over the method, the URL
// as addressed, the body and the timestamp; Calendly's t=…,v1=… header;
// 401 otherwise), then, in one transaction scoped to the tenant, the
// delivery is claimed in the replay store under a verifier name of the
// tenant's own ("hubspot:<tenant>") and its jobs are enqueued on the
// webhooks queue (Ingest). A redelivery enqueues nothing. Workers run the
// jobs on the system role and do their effects in a transaction scoped to
// the job's tenant on the app role:
//
//   - hubspot.contact: the contact's lead is upserted by email in
//     dealix.leads: the tenant's lead with that address (an intake lead
//     first) gets the contact's name and company, or a lead of source
//     "hubspot" is inserted, on the partial unique index of intake leads,
//     so a contact created and then updated is one lead even when two
//     workers race.
//   - calendly.invitee: the invitee's lead is found by email (or created,
//     source "calendly") and the meeting, keyed by the invitee's URI, is
//     booked (invitee.created) or canceled (invitee.canceled) in
//     dealix.meetings. A cancellation is final whatever the order the
//     events arrive in.
//
// A job that keeps failing is retried with backoff and ends in the
// dead-letter state after its attempts; /admin/dlq re-drives it.
// Service.FailHubSpot switches the HubSpot handler to fail, to watch (and
// test) that path. On a running server, Service.FailHubSpotFor and
// Service.HubSpotAttemptsFor set the fault and the attempts for one
// contact only (the launch gates' probe), so the deliveries of every other
// contact are processed as usual meanwhile.
package intake
