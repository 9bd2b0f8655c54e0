package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// InTx under row-level security: two tenants write deals through the app
// role, and each sees only its own.
func ExampleInTx() {
	db := pgtest.ForExample() // owner, app (bound by RLS) and system roles
	ctx := context.Background()

	// As the owner, in a migration: a tenant-scoped table.
	if _, err := db.Owner.Exec(ctx, `CREATE TABLE platform.deals (
		tenant_id uuid NOT NULL, title text NOT NULL)`); err != nil {
		panic(err)
	}
	if err := rlspolicy.Apply(ctx, db.Owner, "platform.deals"); err != nil {
		panic(err)
	}
	if _, err := db.Owner.Exec(ctx, "GRANT SELECT, INSERT ON platform.deals TO "+pgtest.AppRole); err != nil {
		panic(err)
	}

	// On the request path the authentication middleware puts the tenant
	// in the context; here WithTenant does.
	acme, _ := tenancy.WithTenant(ctx, "6f1c1a8e-0000-4000-8000-00000000000a")
	globex, _ := tenancy.WithTenant(ctx, "6f1c1a8e-0000-4000-8000-00000000000b")
	insert := func(ctx context.Context, titles ...string) {
		err := tenancy.InTx(ctx, db.App, func(tx pgx.Tx) error {
			for _, title := range titles {
				_, err := tx.Exec(ctx, `INSERT INTO platform.deals (tenant_id, title)
					VALUES (current_setting('app.tenant_id')::uuid, $1)`, title)
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			panic(err)
		}
	}
	insert(acme, "Acme renewal", "Acme upsell")
	insert(globex, "Globex pilot")

	list := func(ctx context.Context) ([]string, error) {
		var titles []string
		err := tenancy.InTx(ctx, db.App, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, "SELECT title FROM platform.deals ORDER BY title") // no WHERE tenant_id
			if err != nil {
				return err
			}
			titles, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		return titles, err
	}
	for _, tenant := range []struct {
		name string
		ctx  context.Context
	}{{"acme", acme}, {"globex", globex}} {
		titles, err := list(tenant.ctx)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s sees %s\n", tenant.name, strings.Join(titles, ", "))
	}

	// No tenant, no transaction; a row for another tenant is refused.
	_, err := list(ctx)
	fmt.Println(errors.Is(err, tenancy.ErrNoTenant))
	err = tenancy.InTx(acme, db.App, func(tx pgx.Tx) error {
		_, err := tx.Exec(acme, "INSERT INTO platform.deals (tenant_id, title) VALUES ($1, 'forged')",
			"6f1c1a8e-0000-4000-8000-00000000000b")
		return err
	})
	fmt.Println(strings.Contains(err.Error(), "violates row-level security policy"))
	// Output:
	// acme sees Acme renewal, Acme upsell
	// globex sees Globex pilot
	// true
	// true
}

// A nested InTx runs in a savepoint of the caller's transaction and never
// changes its tenant: a context naming another tenant is refused.
func ExampleInTx_nested() {
	db := pgtest.ForExample()
	ctx := context.Background()
	acme, _ := tenancy.WithTenant(ctx, "6f1c1a8e-0000-4000-8000-00000000000a")
	globex, _ := tenancy.WithTenant(ctx, "6f1c1a8e-0000-4000-8000-00000000000b")

	err := tenancy.InTx(acme, db.App, func(tx pgx.Tx) error {
		err := tenancy.InTx(globex, tx, func(pgx.Tx) error { return nil })
		var mismatch *tenancy.TenantMismatchError
		if errors.As(err, &mismatch) {
			fmt.Println("refused: the transaction belongs to", mismatch.Transaction)
		}
		var scope string
		if err := tx.QueryRow(acme, "SELECT current_setting('app.tenant_id')").Scan(&scope); err != nil {
			return err
		}
		fmt.Println("still scoped to", scope)
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// refused: the transaction belongs to 6f1c1a8e-0000-4000-8000-00000000000a
	// still scoped to 6f1c1a8e-0000-4000-8000-00000000000a
}

// API keys: issued once, stored as a hash, authenticated under the key's
// own tenant.
func ExampleAPIKeys() {
	db := pgtest.ForExample()
	ctx, _ := tenancy.WithTenant(context.Background(), "6f1c1a8e-0000-4000-8000-00000000000a")
	keys, err := tenancy.NewAPIKeys(db.App, tenancy.APIKeysConfig{})
	if err != nil {
		panic(err)
	}
	issued, err := keys.Create(ctx, tenancy.NewAPIKey{Name: "CRM sync", Scopes: []string{"deals:read"}})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(issued.Key, "dlx_"))

	// Later, from a request with no tenant in its context yet.
	p, err := keys.Authenticate(context.Background(), issued.Key)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.TenantID, p.Scopes, p.Method)

	if err := keys.Revoke(ctx, issued.ID); err != nil {
		panic(err)
	}
	_, err = keys.Authenticate(context.Background(), issued.Key)
	fmt.Println(errors.Is(err, tenancy.ErrInvalidAPIKey))
	// Output:
	// true
	// 6f1c1a8e-0000-4000-8000-00000000000a [deals:read] api_key
	// true
}
