package rlspolicy_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

func TestSQL(t *testing.T) {
	t.Parallel()
	stmts, err := rlspolicy.SQL("platform.orders")
	require.NoError(t, err)
	require.Equal(t, []string{
		`ALTER TABLE "platform"."orders" ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE "platform"."orders" FORCE ROW LEVEL SECURITY`,
		`DROP POLICY IF EXISTS "tenant_isolation" ON "platform"."orders"`,
		`CREATE POLICY "tenant_isolation" ON "platform"."orders" USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid)`,
	}, stmts)

	for _, bad := range []string{"", "a.b.c", "orders; DROP TABLE x", `"orders"`, "1orders", "platform."} {
		_, err := rlspolicy.SQL(bad)
		require.ErrorIs(t, err, rlspolicy.ErrInvalidTable, bad)
	}
}

func TestApplyIsIdempotentAndPassesTheAudit(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := testContext(t)
	exec(t, db.Owner, "CREATE TABLE platform.orders (tenant_id uuid NOT NULL, id int NOT NULL)")
	grant(t, db.Owner, "platform.orders")

	for range 3 {
		require.NoError(t, rlspolicy.Apply(ctx, db.Owner, "platform.orders"))
	}
	var policies int
	require.NoError(t, db.Owner.QueryRow(ctx, "SELECT count(*) FROM pg_policies WHERE schemaname = 'platform' AND tablename = 'orders'").Scan(&policies))
	require.Equal(t, 1, policies)

	findings, err := rlspolicy.Audit(ctx, db.App)
	require.NoError(t, err)
	require.Empty(t, findings)

	err = rlspolicy.Apply(ctx, db.Owner, "platform.missing")
	require.Error(t, err)
}
