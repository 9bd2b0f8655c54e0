// Package console is the Dealix admin console: server-rendered pages under
// /admin/ui/ for the people who run the sales backend — the overview
// (queue depths, runs in flight, approvals waiting, today's spend), the
// approvals inbox (decide with a reason, see a request's audit trail, search
// decided requests by status), the dead-letter queues (a dead job's payload,
// attempts and errors; re-drive one or all), the durable runs in flight
// (steps with outcomes and timings; cancel), the model costs (spend per
// model and per day as a chart, cache hit ratio) and the launch-gates report
// (Config.Gates runs it).
//
// Every action calls the same library services as the admin API —
// approvals.Service.Decide, dlq.Client.Redrive/RedriveWhere,
// durable.Runtime.Cancel — with the admin's tenant in the context, so the
// audit trail and first-decision-wins are the API's; the cost page runs
// GET /admin/costs's own handler, so its totals are the API's.
//
// Security: an admin signs in by pasting the credential the API takes (a
// JWT or an API key), checked by the API's tenancy.Authenticator; a
// principal with the admin scope gets a random session id in a cookie
// (HttpOnly, SameSite=Strict, Secure on TLS, Path /admin/ui/) kept in
// memory for Config.SessionTTL — sessions do not survive a restart and are
// not shared between instances. A credential without the admin scope gets
// 403. Scripts may also send the credential itself (Authorization or
// X-API-Key) on each request. Cross-origin writes are refused by
// http.CrossOriginProtection; every answer carries ContentSecurityPolicy
// (no inline script or style), X-Frame-Options: DENY and nosniff.
//
// The pages are html/template files and static assets embedded in the
// binary; htmx (partial refresh: the counts poll every 2 s) and uPlot (the
// chart) are vendored from npm under static/vendor (see VENDORED.md), served
// by the server, no build step.
package console
