package rlspolicy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// FindingKind names one kind of row-level security weakness.
type FindingKind string

// The kinds of finding Audit reports.
const (
	// FindingRLSDisabled: a table with a tenant_id column does not have
	// row-level security enabled, so every role sees every tenant's rows.
	FindingRLSDisabled FindingKind = "rls_disabled"
	// FindingRLSNotForced: row-level security is not forced, so the table's
	// owner bypasses it.
	FindingRLSNotForced FindingKind = "rls_not_forced"
	// FindingNoPolicy: row-level security is on but no policy exists (every
	// row is hidden) or it is off and no policy would apply once it is on.
	FindingNoPolicy FindingKind = "no_policy"
	// FindingPolicyWithoutCheck: a permissive policy for ALL, INSERT or
	// UPDATE has no WITH CHECK, so writes are not checked against the
	// tenant explicitly.
	FindingPolicyWithoutCheck FindingKind = "policy_without_check"
	// FindingPolicyNotTenantScoped: the USING or WITH CHECK expression of a
	// permissive policy is not exactly TenantPredicate. Permissive policies
	// are OR-ed, so anything looser (true, current_setting(...) IS NOT
	// NULL, the predicate OR something else) may open rows of every
	// tenant; Audit does not try to prove a different expression safe.
	FindingPolicyNotTenantScoped FindingKind = "policy_not_tenant_scoped"
	// FindingPolicyWrongColumn: a permissive policy has the tenant
	// predicate's shape but compares another column (Finding.Column) than
	// the table's tenant_id with the tenant.
	FindingPolicyWrongColumn FindingKind = "policy_wrong_column"
	// FindingViewBypassesRLS: a view the connected role may read selects
	// from a tenant table with the rights of an owner that row-level
	// security does not bind (a superuser, a BYPASSRLS role, or the table's
	// owner when RLS is not forced), and is not security_invoker, so it
	// shows every tenant's rows. Finding.Role is the view's owner.
	FindingViewBypassesRLS FindingKind = "view_bypasses_rls"
	// FindingTruncateGranted: TRUNCATE on a tenant table is granted to a
	// role row-level security binds (Finding.Role, or PUBLIC). TRUNCATE
	// ignores row-level security and empties the table for every tenant.
	FindingTruncateGranted FindingKind = "truncate_granted"
	// FindingRoleSuperuser: the connected role is a superuser, which
	// row-level security never binds.
	FindingRoleSuperuser FindingKind = "role_superuser"
	// FindingRoleBypassRLS: the connected role has BYPASSRLS.
	FindingRoleBypassRLS FindingKind = "role_bypassrls"
	// FindingRoleOwnsTable: the connected role owns (or inherits the
	// privileges of the owner of) a tenant table, so it could turn
	// row-level security off.
	FindingRoleOwnsTable FindingKind = "role_owns_table"
)

// Finding is one weakness found by Audit.
type Finding struct {
	// Kind says what is wrong.
	Kind FindingKind
	// Table is the schema-qualified tenant table concerned; empty for
	// findings about the connected role alone.
	Table string
	// Policy is the policy concerned, for policy findings.
	Policy string
	// Column is the column a FindingPolicyWrongColumn policy compares.
	Column string
	// View is the schema-qualified view, for FindingViewBypassesRLS.
	View string
	// Role is the role concerned: the connected role for role findings,
	// the view's owner or the grantee ("PUBLIC" for everyone) otherwise.
	Role string
}

// String describes f in one line.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	for _, kv := range [][2]string{{"table", f.Table}, {"policy", f.Policy}, {"column", f.Column}, {"view", f.View}, {"role", f.Role}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	return b.String()
}

// Audit inspects the database that db is connected to, as the connected
// role sees it, and returns what would let one tenant see or change
// another's rows. A tenant table is one (outside the system schemas) with a
// tenant_id column. Audit reports:
//
//   - tenant tables without row-level security, FORCE, or a policy;
//   - permissive policies whose USING or WITH CHECK is not exactly
//     TenantPredicate (compared as PostgreSQL stores and prints it, so
//     spelling and parentheses do not matter, but anything looser does),
//     that compare another column than tenant_id, or that lack WITH CHECK;
//   - views the connected role may read that select from a tenant table
//     with the rights of an owner RLS does not bind, without
//     security_invoker;
//   - TRUNCATE on a tenant table granted to a role RLS binds, or PUBLIC;
//   - the connected role being a superuser, having BYPASSRLS, or owning a
//     tenant table.
//
// No finding means a clean database. Connect with the role that serves
// requests: the audit is about that role. Audit writes nothing: it learns
// how the server prints TenantPredicate from a policy on a temporary table
// in a transaction it rolls back (and, where the role may not create
// temporary tables, uses the text PostgreSQL 12 to 17 print).
func Audit(ctx context.Context, db DB) ([]Finding, error) {
	role, findings, err := auditRole(ctx, db)
	if err != nil {
		return nil, err
	}
	ref, err := referencePredicate(ctx, db)
	if err != nil {
		return nil, err
	}
	tables, err := tenantTables(ctx, db)
	if err != nil {
		return nil, err
	}
	policies, err := tenantPolicies(ctx, db)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		findings = append(findings, t.findings(role, ref, policies[t.name])...)
	}
	for _, q := range []struct {
		kind FindingKind
		sql  string
	}{{FindingViewBypassesRLS, viewsQuery}, {FindingTruncateGranted, truncateQuery}} {
		more, err := relationFindings(ctx, db, q.kind, q.sql)
		if err != nil {
			return nil, err
		}
		findings = append(findings, more...)
	}
	return findings, nil
}

const roleQuery = `SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`

func auditRole(ctx context.Context, db DB) (string, []Finding, error) {
	var (
		role              string
		superuser, bypass bool
		findings          []Finding
	)
	if err := db.QueryRow(ctx, roleQuery).Scan(&role, &superuser, &bypass); err != nil {
		return "", nil, fmt.Errorf("rlspolicy: audit role: %w", err)
	}
	if superuser {
		findings = append(findings, Finding{Kind: FindingRoleSuperuser, Role: role})
	}
	if bypass {
		findings = append(findings, Finding{Kind: FindingRoleBypassRLS, Role: role})
	}
	return role, findings, nil
}

// knownPredicate is TenantPredicate as PostgreSQL 12 to 17 print it
// (pg_get_expr); used only where the server cannot be asked.
const knownPredicate = "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)"

const referenceTable = "pg_temp.rlspolicy_audit_reference"

// errReferenceDone rolls the reference transaction back once it has read
// what it needs.
var errReferenceDone = errors.New("reference read")

// reference is TenantPredicate as the server prints it, split around the
// column: "(" + column + " = " + rest + ")".
type reference struct {
	full, rest string
	fromServer bool // false when knownPredicate stood in
}

// referencePredicate asks the server how it prints TenantPredicate: a
// policy on a temporary table, in a transaction rolled back.
func referencePredicate(ctx context.Context, db DB) (reference, error) {
	var printed string
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		for _, stmt := range []string{
			"CREATE TEMP TABLE " + referenceTable + " (tenant_id uuid)",
			"CREATE POLICY reference ON " + referenceTable + " USING (" + TenantPredicate + ")",
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return err
			}
		}
		err := tx.QueryRow(ctx, "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = '"+referenceTable+"'::regclass").Scan(&printed)
		if err != nil {
			return err
		}
		return errReferenceDone
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, errReferenceDone):
	case errors.As(err, &pgErr):
		// No TEMP privilege, a read-only standby: fall back.
		printed = knownPredicate
	default:
		return reference{}, fmt.Errorf("rlspolicy: audit reference predicate: %w", err)
	}
	ref := reference{full: printed, fromServer: errors.Is(err, errReferenceDone)}
	const head = "(tenant_id = "
	if strings.HasPrefix(printed, head) && strings.HasSuffix(printed, ")") {
		ref.rest = printed[len(head) : len(printed)-1]
	}
	return ref, nil
}

// printedIdentifier matches a column name as pg_get_expr prints it.
var printedIdentifier = regexp.MustCompile(`^(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")$`)

// column returns the column expr compares with the tenant when expr is the
// tenant predicate on some column.
func (r reference) column(expr string) (string, bool) {
	if r.rest == "" || !strings.HasPrefix(expr, "(") || !strings.HasSuffix(expr, " = "+r.rest+")") {
		return "", false
	}
	col := expr[1 : len(expr)-len(" = "+r.rest+")")]
	if !printedIdentifier.MatchString(col) {
		return "", false
	}
	if strings.HasPrefix(col, `"`) {
		col = strings.ReplaceAll(col[1:len(col)-1], `""`, `"`)
	}
	return col, true
}

// systemSchemas excludes the catalogs, TOAST and temporary schemas.
const systemSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// tenantTableJoin restricts pg_class c (with pg_namespace n) to tenant
// tables.
const tenantTableJoin = `
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped`

const tablesQuery = `
SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity,
       pg_has_role(current_user, c.relowner, 'USAGE')
FROM pg_class c` + tenantTableJoin + `
WHERE c.relkind IN ('r', 'p') AND ` + systemSchemas + `
ORDER BY 1`

type tenantTable struct {
	name                 string
	enabled, forced, own bool
}

func tenantTables(ctx context.Context, db DB) ([]tenantTable, error) {
	rows, err := db.Query(ctx, tablesQuery)
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit tables: %w", err)
	}
	var (
		t      tenantTable
		tables []tenantTable
	)
	_, err = pgx.ForEachRow(rows, []any{&t.name, &t.enabled, &t.forced, &t.own}, func() error {
		tables = append(tables, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit tables: %w", err)
	}
	return tables, nil
}

const policiesQuery = `
SELECT format('%I.%I', n.nspname, c.relname), p.polname, p.polcmd::text, p.polpermissive,
       coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p
JOIN pg_class c ON c.oid = p.polrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE ` + systemSchemas + `
ORDER BY 1, 2`

type policy struct {
	name, cmd        string
	permissive       bool
	using, withCheck string
}

func tenantPolicies(ctx context.Context, db DB) (map[string][]policy, error) {
	rows, err := db.Query(ctx, policiesQuery)
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit policies: %w", err)
	}
	var (
		table string
		p     policy
	)
	byTable := make(map[string][]policy)
	_, err = pgx.ForEachRow(rows, []any{&table, &p.name, &p.cmd, &p.permissive, &p.using, &p.withCheck}, func() error {
		byTable[table] = append(byTable[table], p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit policies: %w", err)
	}
	return byTable, nil
}

func (t tenantTable) findings(role string, ref reference, policies []policy) []Finding {
	var out []Finding
	add := func(f Finding) {
		f.Table = t.name
		for _, seen := range out {
			if seen == f {
				return
			}
		}
		out = append(out, f)
	}
	if !t.enabled {
		add(Finding{Kind: FindingRLSDisabled})
	}
	if !t.forced {
		add(Finding{Kind: FindingRLSNotForced})
	}
	if len(policies) == 0 {
		add(Finding{Kind: FindingNoPolicy})
	}
	for _, p := range policies {
		// Restrictive policies are AND-ed with the permissive ones: they
		// can only hide rows, never open them.
		if !p.permissive {
			continue
		}
		// '*' is ALL, 'a' INSERT, 'w' UPDATE: the commands that write rows,
		// where an omitted WITH CHECK falls back to USING or to nothing.
		if (p.cmd == "*" || p.cmd == "a" || p.cmd == "w") && p.withCheck == "" {
			add(Finding{Kind: FindingPolicyWithoutCheck, Policy: p.name})
		}
		for _, expr := range []string{p.using, p.withCheck} {
			switch col, ok := ref.column(expr); {
			case expr == "" || expr == ref.full:
			case ok && col != "tenant_id":
				add(Finding{Kind: FindingPolicyWrongColumn, Policy: p.name, Column: col})
			default:
				add(Finding{Kind: FindingPolicyNotTenantScoped, Policy: p.name})
			}
		}
	}
	if t.own {
		add(Finding{Kind: FindingRoleOwnsTable, Role: role})
	}
	return out
}

// viewsQuery lists the views the connected role may read that select
// directly from a tenant table with the rights of an owner that row-level
// security does not bind. (A view over a view is checked at the view that
// reads the table: PostgreSQL applies each view's owner to the relations
// that view names.)
const viewsQuery = `
SELECT DISTINCT format('%I.%I', n.nspname, c.relname), format('%I.%I', vn.nspname, v.relname),
       pg_get_userbyid(v.relowner)
FROM pg_rewrite r
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
JOIN pg_namespace vn ON vn.oid = v.relnamespace
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p')` + tenantTableJoin + `
JOIN pg_roles o ON o.oid = v.relowner
WHERE ` + systemSchemas + `
  AND NOT coalesce((SELECT option_value::bool FROM pg_options_to_table(v.reloptions)
                    WHERE option_name = 'security_invoker'), false)
  AND (o.rolsuper OR o.rolbypassrls
       OR (NOT c.relforcerowsecurity AND pg_has_role(v.relowner, c.relowner, 'USAGE')))
  AND has_table_privilege(v.oid, 'SELECT')
ORDER BY 1, 2`

// truncateQuery lists TRUNCATE grants on tenant tables to roles row-level
// security binds (PUBLIC included). The owner's own right is not a grant.
const truncateQuery = `
SELECT DISTINCT format('%I.%I', n.nspname, c.relname), ''::text,
       CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(acl.grantee) END
FROM pg_class c` + tenantTableJoin + `
CROSS JOIN LATERAL aclexplode(c.relacl) acl
LEFT JOIN pg_roles g ON g.oid = acl.grantee
WHERE c.relkind IN ('r', 'p') AND ` + systemSchemas + `
  AND acl.privilege_type = 'TRUNCATE' AND acl.grantee <> c.relowner
  AND (acl.grantee = 0 OR NOT (g.rolsuper OR g.rolbypassrls))
ORDER BY 1, 3`

// relationFindings runs a query returning (table, view, role) rows as
// findings of kind.
func relationFindings(ctx context.Context, db DB, kind FindingKind, sql string) ([]Finding, error) {
	rows, err := db.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit %s: %w", kind, err)
	}
	var (
		f   = Finding{Kind: kind}
		out []Finding
	)
	_, err = pgx.ForEachRow(rows, []any{&f.Table, &f.View, &f.Role}, func() error {
		out = append(out, f)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rlspolicy: audit %s: %w", kind, err)
	}
	return out, nil
}
