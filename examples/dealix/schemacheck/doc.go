// Package schemacheck holds a test over the reference server's catalog,
// every package's migrations applied: the schema is ready to be sharded
// by tenant (Citus, with tenant_id as the distribution column).
//
// The rules it checks, on every table of the platform and dealix schemas:
//
//   - a table either has a tenant_id column (a tenant table) or is listed
//     as global, with the reason and what it becomes under Citus
//     (a reference table replicated to every node, or a table kept local
//     to the coordinator);
//   - a tenant table's tenant_id is NOT NULL, row-level security is
//     enabled and forced;
//   - its primary key, unique constraints and unique indexes lead with
//     tenant_id, so each is enforceable on one shard;
//   - every foreign key between tenant tables includes tenant_id on both
//     sides, so the rows it joins are co-located; no global table refers
//     to a tenant table;
//   - every column filled from a sequence (a serial default or an identity)
//     in a tenant table is listed, since its counter is shared by all
//     tenants.
//
// Exceptions live in explicit allowlists in the test, each with its
// reason; an entry that no longer matches the catalog fails the test too,
// so the lists stay true. docs/SCALING.md explains what each exception
// means for a sharded deployment.
package schemacheck
