package approvals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

const (
	tenantA = "11111111-1111-4111-8111-111111111111"
	tenantB = "22222222-2222-4222-8222-222222222222"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(approvals.Migrate))
}

// bundle is what most tests need: a database and a service.
type bundle struct {
	db  *pgtest.DB
	svc *approvals.Service
}

// age moves every stored request d into the past (its creation and its
// expiry), as if the database's clock had advanced by d: expiry follows
// the database's clock, so tests move the rows instead of a clock.
func (b *bundle) age(t testing.TB, d time.Duration) {
	t.Helper()
	_, err := b.db.Admin.Exec(context.Background(), `UPDATE platform.approvals_requests
		SET created_at = created_at - $1::bigint * interval '1 microsecond',
		    expires_at = expires_at - $1::bigint * interval '1 microsecond'`, d.Microseconds())
	require.NoError(t, err)
}

// tenantCtx is a context carrying tenant, as the request path has.
func tenantCtx(t testing.TB, tenant string) context.Context {
	t.Helper()
	ctx, err := tenancy.WithTenant(context.Background(), tenant)
	require.NoError(t, err)
	return ctx
}

// setup creates a database with a continuation table and a service whose
// OnApprove hook writes the continuation there, in the decision's
// transaction, as a queue's EnqueueTx would.
func setup(t *testing.T, cfg approvals.Config) *bundle {
	t.Helper()
	db := pgtest.New(t)
	createContinuations(t, db)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnApprove == nil {
		cfg.OnApprove = enqueueContinuation
	}
	svc, err := approvals.New(db.App, cfg)
	require.NoError(t, err)
	return &bundle{db: db, svc: svc}
}

func createContinuations(t testing.TB, db *pgtest.DB) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Owner.Exec(ctx, `CREATE TABLE platform.test_continuations (
		tenant_id uuid NOT NULL, request_id uuid NOT NULL, kind text NOT NULL, payload jsonb NOT NULL)`)
	require.NoError(t, err)
	_, err = db.Owner.Exec(ctx, "GRANT SELECT, INSERT ON platform.test_continuations TO "+pgtest.AppRole)
	require.NoError(t, err)
}

// enqueueContinuation is the test's OnApprove hook. It also checks the
// promise made to hooks: ctx carries the request's tenant.
func enqueueContinuation(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
	if tenant, _ := tenancy.TenantFrom(ctx); tenant != d.TenantID {
		return fmt.Errorf("hook context carries tenant %q, the request's is %s", tenant, d.TenantID)
	}
	_, err := tx.Exec(ctx, `INSERT INTO platform.test_continuations (tenant_id, request_id, kind, payload)
		VALUES ($1, $2, $3, $4::jsonb)`, d.TenantID, d.RequestID, d.Kind, string(d.Payload))
	return err
}

func countContinuations(t testing.TB, pool *pgxpool.Pool, requestID string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT count(*) FROM platform.test_continuations WHERE request_id = $1", requestID).Scan(&n))
	return n
}

// principalCtx is the context of an authenticated caller of tenant.
func principalCtx(t testing.TB, tenant, subject string) context.Context {
	t.Helper()
	ctx, err := tenancy.WithPrincipal(context.Background(), tenancy.Principal{
		Subject: subject, TenantID: tenant, Scopes: []string{"approvals:admin"}, Method: tenancy.AuthJWT,
	})
	require.NoError(t, err)
	return ctx
}

// riskyAction needs approval under the default policy (51 recipients).
func riskyAction(n int) approvals.Action {
	return approvals.Action{
		Kind:       "outbound.email",
		Actor:      "alice",
		Recipients: 51,
		Risk:       0.1,
		Payload:    json.RawMessage(fmt.Sprintf(`{"campaign": %d}`, n)),
	}
}

// newPending stores a pending request of tenant A and returns it.
func (b *bundle) newPending(t testing.TB, n int) approvals.Request {
	t.Helper()
	res, err := b.svc.Request(tenantCtx(t, tenantA), riskyAction(n))
	require.NoError(t, err)
	require.False(t, res.Allowed)
	require.True(t, res.Created)
	return *res.Request
}

func (b *bundle) auditTrail(t testing.TB, requestID string) []approvals.AuditEntry {
	t.Helper()
	entries, err := b.svc.AuditTrail(tenantCtx(t, tenantA), requestID)
	require.NoError(t, err)
	return entries
}

func decideInput(id string, decision approvals.Status, decider string) approvals.DecideInput {
	return approvals.DecideInput{RequestID: id, Decision: decision, Decider: decider}
}
