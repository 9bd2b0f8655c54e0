// Package querycheck reads every SQL statement the reference server sends
// and checks that each one touching a tenant table names tenant_id: in its
// predicate (WHERE, JOIN … ON, USING, ON CONFLICT) or in its INSERT column
// list. Row-level security already confines each statement to the
// caller's tenant; the rule is for sharding by tenant (Citus), where a
// statement is routed to one node only when it fixes the distribution
// column itself.
//
// A Recorder is a pgx tracer (pgx.QueryTracer and pgx.BatchTracer) that
// collects the distinct statements and the roles that sent them; give it
// to server.Config.QueryTracer. Check reads them against the tenant tables
// of the catalog and Exceptions, the statements that cannot or do not name
// the tenant, each with its reason and what it needs under Citus.
// docs/SCALING.md carries the same list for readers.
//
// The check reads the statement's text; it is not a SQL parser. It strips
// string literals, comments, SELECT lists and RETURNING clauses (a
// tenant_id read back is not a filter), then looks for tenant_id in what
// remains.
package querycheck
