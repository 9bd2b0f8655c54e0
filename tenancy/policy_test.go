package tenancy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

func TestPolicySQL(t *testing.T) {
	t.Parallel()
	stmts, err := tenancy.PolicySQL("platform.orders")
	require.NoError(t, err)
	require.Equal(t, []string{
		`ALTER TABLE "platform"."orders" ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE "platform"."orders" FORCE ROW LEVEL SECURITY`,
		`DROP POLICY IF EXISTS "tenant_isolation" ON "platform"."orders"`,
		`CREATE POLICY "tenant_isolation" ON "platform"."orders" USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)`,
	}, stmts)

	for _, bad := range []string{"", "a.b.c", "orders; DROP TABLE x", `"orders"`, "1orders", "platform."} {
		_, err := tenancy.PolicySQL(bad)
		require.ErrorIs(t, err, tenancy.ErrInvalidTable, bad)
	}
}

func TestApplyPolicyIsIdempotent(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)
	_, err := db.Owner.Exec(ctx, "CREATE TABLE platform.orders (tenant_id uuid NOT NULL, id int NOT NULL)")
	require.NoError(t, err)
	grant(t, db.Owner, "platform.orders")

	for range 3 {
		require.NoError(t, tenancy.ApplyPolicy(ctx, db.Owner, "platform.orders"))
	}
	var policies int
	require.NoError(t, db.Owner.QueryRow(ctx, "SELECT count(*) FROM pg_policies WHERE schemaname = 'platform' AND tablename = 'orders'").Scan(&policies))
	require.Equal(t, 1, policies)

	findings, err := tenancy.Audit(ctx, db.App)
	require.NoError(t, err)
	require.Empty(t, findings)

	err = tenancy.ApplyPolicy(ctx, db.Owner, "platform.missing")
	require.Error(t, err)
}
