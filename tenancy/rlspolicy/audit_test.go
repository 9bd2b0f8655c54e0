package rlspolicy_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

const pred = rlspolicy.TenantPredicate

// createNotes makes platform.notes tenant-scoped with Apply and lets the
// serving roles use it.
func createNotes(t *testing.T, db *pgtest.DB) {
	t.Helper()
	exec(t, db.Owner, `CREATE TABLE platform.notes (tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL, PRIMARY KEY (tenant_id, id))`)
	require.NoError(t, rlspolicy.Apply(testContext(t), db.Owner, "platform.notes"))
	grant(t, db.Owner, "platform.notes")
}

func TestAuditCleanSchemaHasNoFindings(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	exec(t, db.Owner,
		// The predicate spelled differently but stored the same, with an
		// extra restrictive policy (which can only hide rows).
		"CREATE TABLE platform.spelled (tenant_id uuid NOT NULL, org_id uuid)",
		"ALTER TABLE platform.spelled ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.spelled FORCE ROW LEVEL SECURITY",
		`CREATE POLICY by_hand ON platform.spelled USING ((tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid))
		 WITH CHECK (tenant_id   =   NULLIF(current_setting('app.tenant_id', true), '')::uuid)`,
		"CREATE POLICY narrower ON platform.spelled AS RESTRICTIVE USING (org_id IS NOT NULL)",
		// Views that keep RLS: security_invoker, and one owned by the
		// table's owner on a table with FORCE (the owner is bound).
		"CREATE VIEW platform.notes_invoker WITH (security_invoker = true) AS SELECT * FROM platform.notes",
		"CREATE VIEW platform.notes_by_owner AS SELECT id, body FROM platform.notes",
		"GRANT SELECT ON platform.notes_invoker, platform.notes_by_owner TO "+pgtest.AppRole,
		// TRUNCATE for the BYPASSRLS system role is its own business.
		"GRANT TRUNCATE ON platform.notes TO "+pgtest.SystemRole,
	)
	grant(t, db.Owner, "platform.spelled")
	// A view that bypasses RLS but that the audited role cannot read.
	exec(t, db.Admin, "CREATE VIEW platform.notes_admin AS SELECT * FROM platform.notes")

	findings, err := rlspolicy.Audit(testContext(t), db.App)
	require.NoError(t, err)
	require.Empty(t, findings)
}

func TestAuditReportsEachWeakness(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	exec(t, db.Owner,
		// RLS enabled and a policy, but not forced.
		"CREATE TABLE platform.unforced (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.unforced ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY p ON platform.unforced USING ("+pred+") WITH CHECK ("+pred+")",
		// RLS enabled and forced, but no policy.
		"CREATE TABLE platform.unpoliced (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.unpoliced ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.unpoliced FORCE ROW LEVEL SECURITY",
		// No RLS at all.
		"CREATE TABLE platform.open (tenant_id uuid NOT NULL)",
		// A policy without WITH CHECK, and a permissive one that ignores
		// the tenant.
		"CREATE TABLE platform.loose (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.loose ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.loose FORCE ROW LEVEL SECURITY",
		"CREATE POLICY no_check ON platform.loose USING ("+pred+")",
		"CREATE POLICY everyone ON platform.loose FOR SELECT USING (true)",
		// Policies that mention app.tenant_id yet open every tenant.
		"CREATE TABLE platform.mentions (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.mentions ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.mentions FORCE ROW LEVEL SECURITY",
		"CREATE POLICY is_set ON platform.mentions USING (current_setting('app.tenant_id', true) IS NOT NULL) WITH CHECK ("+pred+")",
		"CREATE POLICY or_any ON platform.mentions FOR UPDATE USING ("+pred+") WITH CHECK ("+pred+" OR tenant_id IS NOT NULL)",
		// The predicate on a column that is not the tenant column.
		"CREATE TABLE platform.wrong_column (tenant_id uuid NOT NULL, org_id uuid NOT NULL)",
		"ALTER TABLE platform.wrong_column ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.wrong_column FORCE ROW LEVEL SECURITY",
		"CREATE POLICY by_org ON platform.wrong_column USING (org_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (org_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)",
		// A view by the owner of a table whose RLS is not forced.
		"CREATE VIEW platform.unforced_all AS SELECT * FROM platform.unforced",
		"GRANT SELECT ON platform.unforced_all TO "+pgtest.AppRole,
		// TRUNCATE for roles RLS binds.
		"GRANT TRUNCATE ON platform.notes TO "+pgtest.AppRole,
		"GRANT TRUNCATE ON platform.unforced TO PUBLIC",
		// Not a tenant table: never reported.
		"CREATE TABLE platform.plans (name text)",
		"GRANT TRUNCATE ON platform.plans TO "+pgtest.AppRole,
	)
	// A superuser's view over a well-scoped table, readable by the app
	// role: it shows every tenant's notes.
	exec(t, db.Admin,
		"CREATE VIEW platform.all_notes AS SELECT n.id FROM platform.notes n",
		"GRANT SELECT ON platform.all_notes TO "+pgtest.AppRole,
	)

	findings, err := rlspolicy.Audit(testContext(t), db.App)
	require.NoError(t, err)
	require.ElementsMatch(t, []rlspolicy.Finding{
		{Kind: rlspolicy.FindingRLSNotForced, Table: "platform.unforced"},
		{Kind: rlspolicy.FindingNoPolicy, Table: "platform.unpoliced"},
		{Kind: rlspolicy.FindingRLSDisabled, Table: "platform.open"},
		{Kind: rlspolicy.FindingRLSNotForced, Table: "platform.open"},
		{Kind: rlspolicy.FindingNoPolicy, Table: "platform.open"},
		{Kind: rlspolicy.FindingPolicyWithoutCheck, Table: "platform.loose", Policy: "no_check"},
		{Kind: rlspolicy.FindingPolicyNotTenantScoped, Table: "platform.loose", Policy: "everyone"},
		{Kind: rlspolicy.FindingPolicyNotTenantScoped, Table: "platform.mentions", Policy: "is_set"},
		{Kind: rlspolicy.FindingPolicyNotTenantScoped, Table: "platform.mentions", Policy: "or_any"},
		{Kind: rlspolicy.FindingPolicyWrongColumn, Table: "platform.wrong_column", Policy: "by_org", Column: "org_id"},
		{Kind: rlspolicy.FindingViewBypassesRLS, Table: "platform.unforced", View: "platform.unforced_all", Role: pgtest.OwnerRole},
		{Kind: rlspolicy.FindingViewBypassesRLS, Table: "platform.notes", View: "platform.all_notes", Role: "postgres"},
		{Kind: rlspolicy.FindingTruncateGranted, Table: "platform.notes", Role: pgtest.AppRole},
		{Kind: rlspolicy.FindingTruncateGranted, Table: "platform.unforced", Role: "PUBLIC"},
	}, findings)
	require.Equal(t, "policy_wrong_column table=platform.wrong_column policy=by_org column=org_id",
		rlspolicy.Finding{Kind: rlspolicy.FindingPolicyWrongColumn, Table: "platform.wrong_column", Policy: "by_org", Column: "org_id"}.String())
}

// TestAuditWithoutTemporaryTables: a role that may not create temporary
// tables is audited against the predicate as PostgreSQL prints it, with
// the same verdicts.
func TestAuditWithoutTemporaryTables(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)
	createNotes(t, db)
	exec(t, db.Owner,
		"CREATE TABLE platform.mentions (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.mentions ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.mentions FORCE ROW LEVEL SECURITY",
		"CREATE POLICY is_set ON platform.mentions USING (current_setting('app.tenant_id', true) IS NOT NULL) WITH CHECK ("+pred+")",
	)
	var name string
	require.NoError(t, db.Admin.QueryRow(ctx, "SELECT current_database()").Scan(&name))
	// The database is the test's own, so the REVOKE touches no other.
	exec(t, db.Admin, `REVOKE TEMPORARY ON DATABASE "`+name+`" FROM PUBLIC`)

	// A fresh session: the TEMP right is checked when a session first
	// creates a temporary table.
	pool, err := pgxpool.New(ctx, db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, "CREATE TEMP TABLE probe (x int)")
	require.Error(t, err, "the role must not be able to create temporary tables here")

	findings, err := rlspolicy.Audit(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, []rlspolicy.Finding{
		{Kind: rlspolicy.FindingPolicyNotTenantScoped, Table: "platform.mentions", Policy: "is_set"},
	}, findings)
}

func TestAuditReportsPrivilegedRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)

	findings, err := rlspolicy.Audit(ctx, db.System)
	require.NoError(t, err)
	require.Equal(t, []rlspolicy.Finding{{Kind: rlspolicy.FindingRoleBypassRLS, Role: pgtest.SystemRole}}, findings)

	// The owner owns the library's tenant table.
	findings, err = rlspolicy.Audit(ctx, db.Owner)
	require.NoError(t, err)
	require.Equal(t, []rlspolicy.Finding{{Kind: rlspolicy.FindingRoleOwnsTable, Table: "platform.tenancy_api_keys", Role: pgtest.OwnerRole}}, findings)

	findings, err = rlspolicy.Audit(ctx, db.Admin)
	require.NoError(t, err)
	require.Contains(t, findings, rlspolicy.Finding{Kind: rlspolicy.FindingRoleSuperuser, Role: "postgres"})
	require.Contains(t, findings, rlspolicy.Finding{Kind: rlspolicy.FindingRoleBypassRLS, Role: "postgres"})
	require.Contains(t, findings, rlspolicy.Finding{Kind: rlspolicy.FindingRoleOwnsTable, Table: "platform.tenancy_api_keys", Role: "postgres"})
}
