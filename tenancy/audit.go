package tenancy

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
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
	// FindingPolicyWithoutCheck: a policy for ALL or UPDATE has no WITH
	// CHECK, so writes are not checked against the tenant explicitly.
	FindingPolicyWithoutCheck FindingKind = "policy_without_check"
	// FindingPolicyNotTenantScoped: a permissive policy does not read
	// app.tenant_id; permissive policies are OR-ed, so it may open rows of
	// every tenant.
	FindingPolicyNotTenantScoped FindingKind = "policy_not_tenant_scoped"
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
	// Table is the schema-qualified table concerned; empty for role
	// findings.
	Table string
	// Policy is the policy concerned, for policy findings.
	Policy string
	// Role is the connected role, for role findings.
	Role string
}

// String describes f in one line.
func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(string(f.Kind))
	for _, kv := range [][2]string{{"table", f.Table}, {"policy", f.Policy}, {"role", f.Role}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	return b.String()
}

// Querier runs a query: *pgxpool.Pool, *pgx.Conn and pgx.Tx satisfy it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Audit inspects the database that db is connected to, as the connected
// role sees it, and returns its row-level security weaknesses: every table
// (outside the system schemas) with a tenant_id column that lacks row-level
// security, FORCE, or a policy; policies without WITH CHECK or that ignore
// app.tenant_id; and the connected role being a superuser, having
// BYPASSRLS, or owning a tenant table. No finding means a clean database.
//
// Connect with the role that serves requests: the audit is about that role.
func Audit(ctx context.Context, db Querier) ([]Finding, error) {
	role, findings, err := auditRole(ctx, db)
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
		findings = append(findings, t.findings(role, policies[t.name])...)
	}
	return findings, nil
}

const roleQuery = `SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`

func auditRole(ctx context.Context, db Querier) (string, []Finding, error) {
	var (
		role              string
		superuser, bypass bool
		findings          []Finding
	)
	rows, err := db.Query(ctx, roleQuery)
	if err != nil {
		return "", nil, fmt.Errorf("tenancy: audit role: %w", err)
	}
	if _, err := pgx.ForEachRow(rows, []any{&role, &superuser, &bypass}, func() error { return nil }); err != nil {
		return "", nil, fmt.Errorf("tenancy: audit role: %w", err)
	}
	if superuser {
		findings = append(findings, Finding{Kind: FindingRoleSuperuser, Role: role})
	}
	if bypass {
		findings = append(findings, Finding{Kind: FindingRoleBypassRLS, Role: role})
	}
	return role, findings, nil
}

// systemSchemas excludes the catalogs, TOAST and temporary schemas.
const systemSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

const tablesQuery = `
SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity,
       pg_has_role(current_user, c.relowner, 'USAGE')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p') AND ` + systemSchemas + `
ORDER BY 1`

type tenantTable struct {
	name                 string
	enabled, forced, own bool
}

func tenantTables(ctx context.Context, db Querier) ([]tenantTable, error) {
	rows, err := db.Query(ctx, tablesQuery)
	if err != nil {
		return nil, fmt.Errorf("tenancy: audit tables: %w", err)
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
		return nil, fmt.Errorf("tenancy: audit tables: %w", err)
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

func tenantPolicies(ctx context.Context, db Querier) (map[string][]policy, error) {
	rows, err := db.Query(ctx, policiesQuery)
	if err != nil {
		return nil, fmt.Errorf("tenancy: audit policies: %w", err)
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
		return nil, fmt.Errorf("tenancy: audit policies: %w", err)
	}
	return byTable, nil
}

func (t tenantTable) findings(role string, policies []policy) []Finding {
	var out []Finding
	add := func(kind FindingKind, policy string) {
		f := Finding{Kind: kind, Table: t.name, Policy: policy}
		if kind == FindingRoleOwnsTable {
			f.Role = role
		}
		out = append(out, f)
	}
	if !t.enabled {
		add(FindingRLSDisabled, "")
	}
	if !t.forced {
		add(FindingRLSNotForced, "")
	}
	if len(policies) == 0 {
		add(FindingNoPolicy, "")
	}
	for _, p := range policies {
		// '*' is ALL, 'w' is UPDATE: the commands that write existing rows
		// and where an omitted WITH CHECK silently reuses USING.
		if (p.cmd == "*" || p.cmd == "w") && p.withCheck == "" {
			add(FindingPolicyWithoutCheck, p.name)
		}
		if p.permissive && !p.readsTenant() {
			add(FindingPolicyNotTenantScoped, p.name)
		}
	}
	if t.own {
		add(FindingRoleOwnsTable, "")
	}
	return out
}

// readsTenant reports whether every expression of the policy reads the
// tenant setting.
func (p policy) readsTenant() bool {
	for _, expr := range []string{p.using, p.withCheck} {
		if expr != "" && !strings.Contains(expr, Setting) {
			return false
		}
	}
	return p.using != "" || p.withCheck != ""
}
