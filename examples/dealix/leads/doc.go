// Package leads is the reference server's leads domain: create, list with
// cursor paging and filters, get, and update under optimistic concurrency
// (If-Match against the lead's ETag). Every statement runs in the
// request's tenant-scoped transaction on the app role, so row-level
// security, not a WHERE clause, keeps tenants apart: a lead of another
// tenant is simply not there, and the answer is the same 404 as for a lead
// that never existed.
package leads
