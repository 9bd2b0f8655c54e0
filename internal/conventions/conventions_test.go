package conventions_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/dlq"
	"github.com/dealix/platform/durable"
	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/webhooksig"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, pgtest.WithMigrations(tenancy.Migrate, idempotency.Migrate, durable.Migrate, dlq.Migrate, approvals.Migrate, webhooksig.Migrate))
}

const (
	tenantA = "0d8a4a52-1d11-4c39-9a52-5f0a0a0a0a0a"
	tenantB = "0d8a4a52-1d11-4c39-9a52-5f0b0b0b0b0b"
)

// services are one of each package's services on the app role.
type services struct {
	keys      *tenancy.APIKeys
	store     *idempotency.Store
	runtime   *durable.Runtime
	jobs      *dlq.Client
	approvals *approvals.Service
	replay    *webhooksig.ReplayStore
}

func newServices(t *testing.T, app *pgxpool.Pool) services {
	t.Helper()
	var s services
	var err error
	s.keys, err = tenancy.NewAPIKeys(app, tenancy.APIKeysConfig{})
	require.NoError(t, err)
	s.store, err = idempotency.NewStore(app, idempotency.StoreConfig{})
	require.NoError(t, err)
	s.runtime, err = durable.New(durable.Config{App: app})
	require.NoError(t, err)
	_, err = durable.Register(s.runtime, "noop", func(ctx context.Context, in struct{}) (struct{}, error) { return in, nil })
	require.NoError(t, err)
	s.jobs, err = dlq.NewClient(app, dlq.Config{})
	require.NoError(t, err)
	s.approvals, err = approvals.New(app, approvals.Config{})
	require.NoError(t, err)
	s.replay, err = webhooksig.NewReplayStore(app, webhooksig.ReplayStoreConfig{})
	require.NoError(t, err)
	return s
}

var heldAction = approvals.Action{Kind: "outbound.campaign", Actor: "user-1", Recipients: 51, Payload: json.RawMessage(`{}`)}

// TestCallsWithoutATenantFailWithTheSharedError calls each package's
// request-path entry points with a context that carries no tenant.
func TestCallsWithoutATenantFailWithTheSharedError(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := newServices(t, db.App)
	ctx := context.Background()
	calls := map[string]func() error{
		"tenancy.InTx": func() error { return tenancy.InTx(ctx, db.App, func(pgx.Tx) error { return nil }) },
		"tenancy.APIKeys.Create": func() error {
			_, err := s.keys.Create(ctx, tenancy.NewAPIKey{Name: "k"})
			return err
		},
		"idempotency.Store.Claim": func() error {
			_, err := s.store.Claim(ctx, "key-1", idempotency.FingerprintRequest("POST", "/x", "", nil))
			return err
		},
		"durable.Runtime.Start": func() error { _, err := s.runtime.Start(ctx, "noop", struct{}{}); return err },
		"durable.Runtime.List":  func() error { _, err := s.runtime.List(ctx, durable.ListOptions{}); return err },
		"dlq.Client.Enqueue":    func() error { _, err := s.jobs.Enqueue(ctx, dlq.JobParams{Queue: "q", Kind: "k"}); return err },
		"approvals.Service.Request": func() error {
			_, err := s.approvals.Request(ctx, heldAction)
			return err
		},
		"approvals.Service.List": func() error { _, err := s.approvals.List(ctx, approvals.ListOptions{}); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, tenancy.ErrNoTenant)
			// One value: every package's re-export matches too.
			for _, same := range []error{idempotency.ErrNoTenant, durable.ErrNoTenant, dlq.ErrNoTenant, approvals.ErrNoTenant} {
				require.True(t, errors.Is(err, same))
			}
		})
	}
}

// txCall is one …Tx entry point, called with ctx in the caller's tx.
type txCall func(ctx context.Context, tx pgx.Tx) error

// TestTxCallsNeverReScopeTheCallersTransaction calls each package's …Tx
// entry points in a transaction scoped to tenant A with a context naming
// tenant B: each is refused with the typed error, and the transaction is
// still scoped to A afterwards.
func TestTxCallsNeverReScopeTheCallersTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := newServices(t, db.App)
	fp := idempotency.FingerprintRequest("POST", "/x", "", nil)
	calls := map[string]txCall{
		"tenancy.InTx (nested)": func(ctx context.Context, tx pgx.Tx) error {
			return tenancy.InTx(ctx, tx, func(pgx.Tx) error { return nil })
		},
		"tenancy.APIKeys.CreateTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.keys.CreateTx(ctx, tx, tenancy.NewAPIKey{Name: "k"})
			return err
		},
		"idempotency.Store.ClaimTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.store.ClaimTx(ctx, tx, "key-1", fp)
			return err
		},
		"idempotency.Store.LookupTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.store.LookupTx(ctx, tx, "key-1")
			return err
		},
		"durable.Runtime.StartTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.runtime.StartTx(ctx, tx, "noop", struct{}{})
			return err
		},
		"durable.Runtime.CancelTx": func(ctx context.Context, tx pgx.Tx) error {
			return s.runtime.CancelTx(ctx, tx, "run-1", "why")
		},
		"dlq.Client.EnqueueTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.jobs.EnqueueTx(ctx, tx, dlq.JobParams{Queue: "q", Kind: "k"})
			return err
		},
		"approvals.Service.RequestTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.approvals.RequestTx(ctx, tx, heldAction)
			return err
		},
		"webhooksig.ReplayStore.ClaimTx": func(ctx context.Context, tx pgx.Tx) error {
			_, err := s.replay.ClaimTx(ctx, tx, "stripe", "evt_1", time.Hour)
			return err
		},
	}
	ctxB, err := tenancy.WithTenant(context.Background(), tenantB)
	require.NoError(t, err)
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			err := tenancy.InTxForTenant(ctx, db.App, tenantA, func(tx pgx.Tx) error {
				err := call(ctxB, tx)
				var mismatch *tenancy.TenantMismatchError
				require.ErrorAs(t, err, &mismatch)
				require.ErrorIs(t, err, tenancy.ErrTenantMismatch)
				require.Equal(t, tenantB, mismatch.Context)
				require.Equal(t, tenantA, mismatch.Transaction)

				var scoped string
				require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('app.tenant_id', true)").Scan(&scoped))
				require.Equal(t, tenantA, scoped, "the caller's transaction keeps its tenant")
				return nil
			})
			require.NoError(t, err, "the transaction is still usable and commits")
		})
	}
}
