package tenancy_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

// TestConcurrentTenantsOnSmallPool interleaves transactions of two tenants
// and tenant-less queries on a pool of two connections: each transaction
// sees only its tenant's rows and no query without a tenant sees any.
func TestConcurrentTenantsOnSmallPool(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	createNotes(t, db)
	seedTwoTenants(t, db)
	ctx := testContext(t)
	cfg, err := pgxpool.ParseConfig(db.URL(pgtest.RoleApp))
	require.NoError(t, err)
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := []string{tenantA, tenantB, ""}[g%3]
			for range 20 {
				errs <- checkVisibleRows(t, pool, tenant)
			}
		}()
	}
	go func() { wg.Wait(); close(errs) }()
	for err := range errs {
		require.NoError(t, err)
	}
}

func checkVisibleRows(t *testing.T, pool *pgxpool.Pool, tenant string) error {
	if tenant == "" {
		total, _, _, err := countRows(testContext(t), pool, "platform.notes")
		if err == nil && total != 0 {
			err = fmt.Errorf("a query without tenant saw %d rows", total)
		}
		return err
	}
	ctx := tenantContext(t, tenant)
	return tenancy.InTx(ctx, pool, func(tx pgx.Tx) error {
		total, ofA, ofB, err := countRows(ctx, tx, "platform.notes")
		own := map[string]int{tenantA: ofA, tenantB: ofB}[tenant]
		if err == nil && (total != 2 || own != 2) {
			err = fmt.Errorf("tenant %s saw %d rows, %d of its own", tenant, total, own)
		}
		return err
	})
}

// TestRevokeRacesAuthentication revokes a key while it is being used:
// once Revoke has returned, no authentication succeeds.
func TestRevokeRacesAuthentication(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	keys := newAPIKeys(t, db, newFakeClock())
	ctxA := tenantContext(t, tenantA)
	issued, err := keys.Create(ctxA, tenancy.NewAPIKey{Name: "busy"})
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := keys.Authenticate(ctxA, issued.Key); err != nil && !isOneOf(err, []error{tenancy.ErrInvalidAPIKey}) {
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	require.NoError(t, keys.Revoke(ctxA, issued.ID))
	for range 10 {
		_, err := keys.Authenticate(ctxA, issued.Key)
		require.ErrorIs(t, err, tenancy.ErrInvalidAPIKey)
	}
	wg.Wait()
}
