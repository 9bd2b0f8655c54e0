// Package rls scopes PostgreSQL transactions to one tenant for the
// library's packages.
//
// Every tenant-scoped table carries a row-level security policy on
// current_setting('app.tenant_id'). InTx opens a transaction, sets that
// setting with set_config(…, true) so it ends with the transaction and can
// never leak to the next user of a pooled connection, and runs the caller's
// function. The public counterpart for applications is in package tenancy;
// this one exists so that packages which must not import tenancy (queues,
// durable runs) set the tenant the same way.
package rls
