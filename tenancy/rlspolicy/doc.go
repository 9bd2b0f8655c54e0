// Package rlspolicy makes PostgreSQL tables tenant-scoped with row-level
// security, and audits a database for what would let one tenant see
// another's rows.
//
// It is the schema side of package tenancy: tenancy scopes each
// transaction to a tenant (set_config('app.tenant_id', …, true)); the
// policies written here make PostgreSQL enforce that scope. Use SQL or
// Apply in migrations, as the tables' owner:
//
//	err := rlspolicy.Apply(ctx, ownerPool, "platform.deals")
//
// which enables and forces row-level security and creates one policy,
// Name, with USING and WITH CHECK both TenantPredicate:
//
//	tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
//
// No tenant set means no rows (default deny).
//
// Audit(ctx, appPool) lists what is wrong, as the role that serves
// requests sees it: tenant tables (those with a tenant_id column) without
// row-level security, FORCE or a policy; permissive policies that are not
// exactly the tenant predicate, compare another column, or lack WITH
// CHECK; views that read a tenant table with an owner row-level security
// does not bind; TRUNCATE granted on a tenant table to a role it binds;
// and the role itself being a superuser, BYPASSRLS, or a tenant table's
// owner. Release gates call it and fail on any finding.
package rlspolicy
