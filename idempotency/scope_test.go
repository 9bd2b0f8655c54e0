package idempotency_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/idempotency"
	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
	"github.com/dealix/platform/tenancy"
)

// The shared errors are the same values as everywhere else in the library,
// so errors.Is matches whichever package returned them.
func TestSharedErrorsAreTheLibrarysValues(t *testing.T) {
	t.Parallel()
	require.True(t, idempotency.ErrNoTenant == errs.ErrNoTenant && idempotency.ErrNoTenant == tenancy.ErrNoTenant)
	require.True(t, idempotency.ErrInvalidTenant == errs.ErrInvalidTenant && idempotency.ErrInvalidTenant == tenancy.ErrInvalidTenant)
	require.True(t, idempotency.ErrInvalidConfig == errs.ErrInvalidConfig && idempotency.ErrInvalidConfig == tenancy.ErrInvalidConfig)
	require.True(t, idempotency.ErrTenantMismatch == errs.ErrTenantMismatch && idempotency.ErrTenantMismatch == tenancy.ErrTenantMismatch)

	_, err := idempotency.NewStore(nil, idempotency.StoreConfig{})
	require.ErrorIs(t, err, tenancy.ErrInvalidConfig)
}

// txCall is one of the …Tx methods, called with ctx in tx on key "k",
// whose claim (when it needs one) is token.
type txCall struct {
	name string
	call func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, token string) error
}

var txCalls = []txCall{
	{"ClaimTx", func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, _ string) error {
		_, err := s.ClaimTx(ctx, tx, "k", fpOf("a"))
		return err
	}},
	{"LookupTx", func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, _ string) error {
		_, err := s.LookupTx(ctx, tx, "k")
		return err
	}},
	{"CompleteTx", func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, token string) error {
		return s.CompleteTx(ctx, tx, "k", token, idempotency.Response{Status: 201})
	}},
	{"ReleaseTx", func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, token string) error {
		return s.ReleaseTx(ctx, tx, "k", token)
	}},
	{"RenewTx", func(ctx context.Context, s *idempotency.Store, tx pgx.Tx, token string) error {
		_, err := s.RenewTx(ctx, tx, "k", token)
		return err
	}},
}

// txTenant reads the tenant tx is scoped to ("" when none).
func txTenant(t *testing.T, tx pgx.Tx) string {
	t.Helper()
	var tenant string
	require.NoError(t, tx.QueryRow(context.Background(),
		"SELECT coalesce(current_setting('"+rls.Setting+"', true), '')").Scan(&tenant))
	return tenant
}

// entryState is tenant A's entry of "k" as the system role sees it.
func entryState(t *testing.T, b *bundle) string {
	t.Helper()
	var state string
	err := b.db.System.QueryRow(context.Background(),
		"SELECT state || ' ' || coalesce(lease_until::text, '-') || ' ' || expires_at::text FROM platform.idempotency_keys WHERE tenant_id = $1 AND key = 'k'",
		tenantA).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "none"
	}
	require.NoError(t, err)
	return state
}

// A …Tx method whose context names another tenant than its transaction's
// is refused with the typed error, writes nothing, takes no lock, and
// leaves the transaction scoped to its own tenant.
func TestTxMethodsRefuseAContextNamingAnotherTenant(t *testing.T) {
	t.Parallel()
	for _, c := range txCalls {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctxA, ctxB := tenantCtx(t, tenantA), tenantCtx(t, tenantB)
			var token string
			if c.name != "ClaimTx" {
				claim, err := b.store.Claim(ctxA, "k", fpOf("a"))
				require.NoError(t, err)
				token = claim.Token
			}
			before := entryState(t, b)

			tx, err := b.db.App.Begin(ctxA)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(context.Background()) }()
			require.NoError(t, rls.SetTenant(ctxA, tx, tenantA))

			err = c.call(ctxB, b.store, tx, token)
			var mismatch *tenancy.TenantMismatchError
			require.ErrorAs(t, err, &mismatch)
			require.ErrorIs(t, err, idempotency.ErrTenantMismatch)
			require.Equal(t, tenantB, mismatch.Context)
			require.Equal(t, tenantA, mismatch.Transaction)
			require.Equal(t, tenantA, txTenant(t, tx), "the caller's transaction keeps its scope")

			// The transaction is intact and still works for its own tenant.
			_, err = tx.Exec(ctxA, "INSERT INTO platform.test_orders (tenant_id, body) VALUES ($1, 'x')", tenantA)
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctxA))
			require.Equal(t, before, entryState(t, b), "nothing was written")
			require.Equal(t, 1, countOrders(t, b.db.System))

			if c.name == "ClaimTx" {
				// No advisory lock was left behind: another transaction
				// claims the key while the refused one would still hold it.
				_, err := b.store.Claim(ctxA, "k", fpOf("a"))
				require.NoError(t, err)
			}
		})
	}
}

// A …Tx method given a transaction scoped to no tenant returns ErrNoTenant,
// whether or not its context names one, and never scopes the transaction
// itself.
func TestTxMethodsRefuseAnUnscopedTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	claim, err := b.store.Claim(tenantCtx(t, tenantA), "k", fpOf("a"))
	require.NoError(t, err)
	for _, c := range txCalls {
		for _, ctx := range []context.Context{context.Background(), tenantCtx(t, tenantA)} {
			err := pgx.BeginFunc(context.Background(), b.db.App, func(tx pgx.Tx) error {
				err := c.call(ctx, b.store, tx, claim.Token)
				require.Equal(t, "", txTenant(t, tx), c.name)
				return err
			})
			require.ErrorIs(t, err, idempotency.ErrNoTenant, c.name)
			require.ErrorIs(t, err, errs.ErrNoTenant, c.name)
		}
	}
	require.Equal(t, idempotency.StateInProgress, mustLookup(t, b, "k").State)
}

// A …Tx method whose context names no tenant takes its transaction's, as
// rls.CheckTx does.
func TestTxMethodsTakeTheTransactionsTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bare := context.Background()
	require.NoError(t, rls.InTx(bare, b.db.App, tenantA, func(tx pgx.Tx) error {
		claim, err := b.store.ClaimTx(bare, tx, "k", fpOf("a"))
		if err != nil {
			return err
		}
		if _, err := b.store.RenewTx(bare, tx, "k", claim.Token); err != nil {
			return err
		}
		if err := b.store.CompleteTx(bare, tx, "k", claim.Token, idempotency.Response{Status: 201}); err != nil {
			return err
		}
		entry, err := b.store.LookupTx(bare, tx, "k")
		if err != nil {
			return err
		}
		require.Equal(t, tenantA, entry.TenantID)
		return nil
	}))
	require.Equal(t, idempotency.StateCompleted, mustLookup(t, b, "k").State)
}

// Without a tenant in the context, the methods that run their own
// transaction return the shared ErrNoTenant and touch nothing.
func TestMethodsWithoutATenantReturnErrNoTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bare := context.Background()
	token := "8e03978e-40d5-43e8-bc93-6894a57f9324"
	_, err := b.store.Claim(bare, "k", fpOf("a"))
	require.ErrorIs(t, err, errs.ErrNoTenant)
	_, err = b.store.Lookup(bare, "k")
	require.ErrorIs(t, err, errs.ErrNoTenant)
	require.ErrorIs(t, b.store.Complete(bare, "k", token, idempotency.Response{Status: 200}), errs.ErrNoTenant)
	require.ErrorIs(t, b.store.Release(bare, "k", token), errs.ErrNoTenant)
	_, err = b.store.Renew(bare, "k", token)
	require.ErrorIs(t, err, errs.ErrNoTenant)
	require.Equal(t, 0, countKeys(t, b.db))
}

func mustLookup(t *testing.T, b *bundle, key string) idempotency.Entry {
	t.Helper()
	entry, err := b.store.Lookup(tenantCtx(t, tenantA), key)
	require.NoError(t, err)
	return entry
}

// The lease and the expiry are stamped by the database: a claim made in
// the caller's transaction starts at that transaction's now(), whatever the
// clock of the process that sent it says.
func TestLeaseAndExpiryAreTheDatabasesTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := tenantCtx(t, tenantA)
	require.NoError(t, rls.InTx(ctx, b.db.App, tenantA, func(tx pgx.Tx) error {
		var now time.Time
		require.NoError(t, tx.QueryRow(ctx, "SELECT now()").Scan(&now))
		claim, err := b.store.ClaimTx(ctx, tx, "k", fpOf("a"))
		require.NoError(t, err)
		require.True(t, claim.LeaseUntil.Equal(now.Add(time.Minute)), "lease %s, transaction time %s", claim.LeaseUntil, now)
		entry, err := b.store.LookupTx(ctx, tx, "k")
		require.NoError(t, err)
		require.True(t, entry.CreatedAt.Equal(now))
		require.True(t, entry.ExpiresAt.Equal(now.Add(time.Hour)))
		until, err := b.store.RenewTx(ctx, tx, "k", claim.Token)
		require.NoError(t, err)
		require.True(t, until.Equal(now.Add(time.Minute)))
		return nil
	}))
}

// Instances whose clocks differ by an hour must agree on leases and
// expiry, so no decision of the package may rest on the process's clock: a
// Go test cannot set its own process's clock, so this one checks the source
// instead. Every lease, expiry and "now" the package compares is the
// database's now(), read in the statement (TestLeaseAndExpiryAreTheDatabasesTime
// shows it), and the package's code never reads time.Now, time.Since or
// time.Until. Timers (the middleware's lease renewal) and context deadlines
// measure intervals on this process and stay.
func TestTheProcessClockIsNeverRead(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "time" &&
				(sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
				t.Errorf("%s: time.%s: leases and expiries come from the database's now()", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
	require.NotZero(t, checked)
}
