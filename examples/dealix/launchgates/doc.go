// Package launchgates evaluates the Dealix reference server's launch gates
// and its release readiness matrix as gates.Set values, checked live
// against a running server, its PostgreSQL database and this repository.
//
// LaunchSet is the launch-gates document as data: the gates it names in
// seven areas (technical T1–T8, security S1–S7, observability O1–O5, GTM
// G1–G5, support I1–I4, governance GV1–GV2, rollback R1–R3) under the
// launch rule, at least 24 closed including every P0. (The document counts
// its gates as 30 but names 34; every named gate is checked, and the rule
// keeps its 24.) What the server and the
// repository can prove is checked: deep health, the four queues and
// idempotent replays, a bounded load probe, webhook signatures, API keys
// and rate limits, the CORS allowlist, correlation ids, the costs
// endpoint, the SLO and runbook documents, the approvals gate including a
// second decision that must not flip the first, and a backup-restore drill
// (pg_dump the server's database, restore it into a fresh database,
// compare row counts per table). What needs outside credentials or a
// person (PostHog, Moyasar, HubSpot and Calendly accounts, a status page,
// a pen test, a paying customer, a production host's firewall) is reported
// blocked with its reason, and blocked never counts as closed.
//
// ReleaseSet is the release readiness matrix (every gate must close):
// health and deep health, the public price list, the queue statistics,
// the approvals endpoints, webhooks refusing unsigned deliveries, the
// correlation id echoed and bound to the trace, the RLS audit, and the
// evidence a deal close writes. gates/sets/release.json is the same matrix
// as a gate file for the gates command.
//
// Both run from the command launchgates:
//
//	go run ./examples/dealix/launchgates/cmd/launchgates -set launch \
//	    -base-url http://127.0.0.1:8080 -admin-token "$ADMIN_TOKEN" -database-url "$DATABASE_URL"
//
// and the reference server serves the launch report at GET /admin/gates.
//
// T5's fault injection needs switches only the server's process holds:
// WebhookFault connects to them (fail the webhook handler, deliver, count
// dead letters, re-drive, look for the effect) and is handed to LaunchSet
// as Config.FaultInjection; without it T5 is partial, with the reason.
// The reference server's GET /admin/gates (and its console's gates page)
// connects it to one probe contact of the caller's tenant: only that
// contact's delivery fails, at its single attempt, and its lead is deleted
// after the run, so real deliveries arriving meanwhile are processed as
// usual and the check leaves no business data.
//
// Checks that write (an idempotent lead, a deal, a held campaign) do so in
// the tenant of the credentials they are given and name their rows
// "launch gate probe", so a run against production leaves recognisable
// traces and nothing sent: the probe campaign is rejected, never approved.
package launchgates
