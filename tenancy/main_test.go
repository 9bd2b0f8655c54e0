package tenancy_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

const (
	tenantA       = "6f1c1a8e-0000-4000-8000-00000000000a"
	tenantB       = "6f1c1a8e-0000-4000-8000-00000000000b"
	tenantUnknown = "6f1c1a8e-0000-4000-8000-0000000000ff"
)

var errTestRollback = errors.New("roll back")

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(tenancy.Migrate))
}

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func tenantContext(t testing.TB, tenant string) context.Context {
	t.Helper()
	ctx, err := tenancy.WithTenant(testContext(t), tenant)
	require.NoError(t, err)
	return ctx
}

// createNotes creates platform.notes as the owner, makes it tenant-scoped
// with ApplyPolicy and lets the app and system roles use it.
func createNotes(t testing.TB, db *pgtest.DB) {
	t.Helper()
	ctx := testContext(t)
	_, err := db.Owner.Exec(ctx, `CREATE TABLE platform.notes (
		tenant_id uuid NOT NULL, id bigint NOT NULL, body text NOT NULL,
		PRIMARY KEY (tenant_id, id))`)
	require.NoError(t, err)
	require.NoError(t, rlspolicy.Apply(ctx, db.Owner, "platform.notes"))
	grant(t, db.Owner, "platform.notes")
}

func grant(t testing.TB, owner *pgxpool.Pool, table string) {
	t.Helper()
	_, err := owner.Exec(testContext(t), "GRANT SELECT, INSERT, UPDATE, DELETE ON "+table+" TO "+pgtest.AppRole+", "+pgtest.SystemRole)
	require.NoError(t, err)
}

func jsonDecode(res *http.Response, v any) error {
	return json.NewDecoder(res.Body).Decode(v)
}
