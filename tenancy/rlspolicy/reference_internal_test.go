package rlspolicy

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
)

// The server prints TenantPredicate as knownPredicate, the fallback; and
// the audit asked the server, it did not fall back.
func TestReferencePredicateComesFromTheServer(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ref, err := referencePredicate(context.Background(), db.App)
	require.NoError(t, err)
	require.True(t, ref.fromServer)
	require.Equal(t, knownPredicate, ref.full)

	col, ok := ref.column(`("Org ""Id""" = ` + ref.rest + ")")
	require.True(t, ok)
	require.Equal(t, `Org "Id"`, col)
	_, ok = ref.column("((tenant_id = " + ref.rest + ") OR true)")
	require.False(t, ok)
}
