package approvals_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
)

func TestMigrateIsSafeToRepeatAndEnforcesRLS(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	require.NoError(t, approvals.Migrate(ctx, db.Owner), "a second run on a migrated database is a no-op")

	for _, table := range []string{"approvals_requests", "approvals_audit"} {
		var enabled, forced bool
		var policies int
		require.NoError(t, db.Admin.QueryRow(ctx, `SELECT c.relrowsecurity, c.relforcerowsecurity,
			(SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'platform' AND p.tablename = c.relname
			   AND p.qual IS NOT NULL AND p.with_check IS NOT NULL)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'platform' AND c.relname = $1`, table).Scan(&enabled, &forced, &policies))
		require.True(t, enabled, table)
		require.True(t, forced, table)
		require.Equal(t, 1, policies, "%s: one policy with USING and WITH CHECK", table)
	}
}
