package rlspolicy_test

import (
	"fmt"

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
