package tenancy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

func TestAuditCleanSchemaHasNoFindings(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	findings, err := tenancy.Audit(testContext(t), db.App)
	require.NoError(t, err)
	require.Empty(t, findings)
}

func TestAuditReportsWeakTables(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)
	for _, stmt := range []string{
		// RLS enabled and a policy, but not forced.
		"CREATE TABLE platform.unforced (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.unforced ENABLE ROW LEVEL SECURITY",
		"CREATE POLICY p ON platform.unforced USING (" + tenancy.TenantPredicate + ") WITH CHECK (" + tenancy.TenantPredicate + ")",
		// RLS enabled and forced, but no policy.
		"CREATE TABLE platform.unpoliced (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.unpoliced ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.unpoliced FORCE ROW LEVEL SECURITY",
		// No RLS at all.
		"CREATE TABLE platform.open (tenant_id uuid NOT NULL)",
		// A policy without WITH CHECK, and a permissive one that ignores the tenant.
		"CREATE TABLE platform.loose (tenant_id uuid NOT NULL)",
		"ALTER TABLE platform.loose ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.loose FORCE ROW LEVEL SECURITY",
		"CREATE POLICY no_check ON platform.loose USING (" + tenancy.TenantPredicate + ")",
		"CREATE POLICY everyone ON platform.loose FOR SELECT USING (true)",
		// Not a tenant table: never reported.
		"CREATE TABLE platform.plans (name text)",
	} {
		_, err := db.Owner.Exec(ctx, stmt)
		require.NoError(t, err, stmt)
	}

	findings, err := tenancy.Audit(ctx, db.App)
	require.NoError(t, err)
	require.ElementsMatch(t, []tenancy.Finding{
		{Kind: tenancy.FindingRLSNotForced, Table: "platform.unforced"},
		{Kind: tenancy.FindingNoPolicy, Table: "platform.unpoliced"},
		{Kind: tenancy.FindingRLSDisabled, Table: "platform.open"},
		{Kind: tenancy.FindingRLSNotForced, Table: "platform.open"},
		{Kind: tenancy.FindingNoPolicy, Table: "platform.open"},
		{Kind: tenancy.FindingPolicyWithoutCheck, Table: "platform.loose", Policy: "no_check"},
		{Kind: tenancy.FindingPolicyNotTenantScoped, Table: "platform.loose", Policy: "everyone"},
	}, findings)
	require.Equal(t, "no_policy table=platform.unpoliced", tenancy.Finding{Kind: tenancy.FindingNoPolicy, Table: "platform.unpoliced"}.String())
}

func TestAuditReportsPrivilegedRoles(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)

	findings, err := tenancy.Audit(ctx, db.System)
	require.NoError(t, err)
	require.Equal(t, []tenancy.Finding{{Kind: tenancy.FindingRoleBypassRLS, Role: pgtest.SystemRole}}, findings)

	// The owner owns the library's tenant table.
	findings, err = tenancy.Audit(ctx, db.Owner)
	require.NoError(t, err)
	require.Equal(t, []tenancy.Finding{{Kind: tenancy.FindingRoleOwnsTable, Table: "platform.tenancy_api_keys", Role: pgtest.OwnerRole}}, findings)

	findings, err = tenancy.Audit(ctx, db.Admin)
	require.NoError(t, err)
	require.Contains(t, findings, tenancy.Finding{Kind: tenancy.FindingRoleSuperuser, Role: "postgres"})
	require.Contains(t, findings, tenancy.Finding{Kind: tenancy.FindingRoleBypassRLS, Role: "postgres"})
	require.Contains(t, findings, tenancy.Finding{Kind: tenancy.FindingRoleOwnsTable, Table: "platform.tenancy_api_keys", Role: "postgres"})
}
