// Package reports serves the weekly pack of the Dealix reference server:
// GET /api/v1/reports/weekly?week=2026-W49 gathers, for the caller's
// tenant and one ISO week, the new leads, the meetings booked, the deals
// closed with their evidence, the outbound messages sent, the approvals
// still pending and the model spend — as JSON, or as CSV when the client
// asks for text/csv.
//
// Everything is read in one repeatable-read transaction scoped to the
// caller's tenant, so the figures describe one moment and row-level
// security keeps every other tenant out.
package reports
