package rlspolicy_test

import (
	"context"
	"fmt"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

func ExampleSQL() {
	stmts, err := rlspolicy.SQL("platform.deals")
	if err != nil {
		panic(err)
	}
	for _, stmt := range stmts {
		fmt.Println(stmt)
	}
	// Output:
	// ALTER TABLE "platform"."deals" ENABLE ROW LEVEL SECURITY
	// ALTER TABLE "platform"."deals" FORCE ROW LEVEL SECURITY
	// DROP POLICY IF EXISTS "tenant_isolation" ON "platform"."deals"
	// CREATE POLICY "tenant_isolation" ON "platform"."deals" USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)
}

func ExampleAudit() {
	db := pgtest.ForExample()
	ctx := context.Background()
	for _, stmt := range []string{
		"CREATE TABLE platform.deals (tenant_id uuid NOT NULL, title text)",
		"CREATE TABLE platform.leads (tenant_id uuid NOT NULL, name text)",
		"ALTER TABLE platform.leads ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE platform.leads FORCE ROW LEVEL SECURITY",
		// It mentions the tenant, yet lets every tenant through.
		"CREATE POLICY loose ON platform.leads USING (current_setting('app.tenant_id', true) IS NOT NULL) WITH CHECK (" + rlspolicy.TenantPredicate + ")",
	} {
		if _, err := db.Owner.Exec(ctx, stmt); err != nil {
			panic(err)
		}
	}
	if err := rlspolicy.Apply(ctx, db.Owner, "platform.deals"); err != nil {
		panic(err)
	}

	// Audit as the role that serves requests.
	findings, err := rlspolicy.Audit(ctx, db.App)
	if err != nil {
		panic(err)
	}
	for _, f := range findings {
		fmt.Println(f)
	}
	// Output:
	// policy_not_tenant_scoped table=platform.leads policy=loose
}
