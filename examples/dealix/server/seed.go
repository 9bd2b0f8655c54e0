package server

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/examples/dealix/apikeys"
	"github.com/dealix/platform/tenancy"
)

// DemoTenantID is the demo tenant's id; fixed, so seeding is idempotent
// and a restart finds the same tenant.
const DemoTenantID = "0d3a1c5e-5a1e-4d0c-9e11-000000000001"

// DemoKeyName names the demo API key; each start revokes the previous
// one and issues a new one, since a key's secret is shown only once.
const DemoKeyName = "demo key (printed at start-up)"

// DevKeyID is the kid of the server's HMAC key (configured or development):
// tokens signed with that key must name it.
const DevKeyID = "dealix-dev"

// Demo is what the start-up banner prints.
type Demo struct {
	TenantID string
	// JWT is an admin token of the demo tenant, valid for 24 hours; empty
	// when the server has no HMAC key (JWKS only).
	JWT string
	// APIKey is a key of the demo tenant without the admin scope.
	APIKey string
}

var demoLeads = []struct{ name, company, email, status string }{
	{"Nora Al-Qahtani", "Riyadh Logistics", "nora@riyadh-logistics.example", "new"},
	{"Faisal Al-Harbi", "Jeddah Clinics", "faisal@jeddah-clinics.example", "contacted"},
	{"Layla Al-Otaibi", "Dammam Retail", "layla@dammam-retail.example", "qualified"},
}

// seedDemo makes sure the demo tenant exists with a few leads, revokes the
// demo API key of an earlier start and issues a new one, and signs a demo
// JWT. Running it again changes nothing but the key.
func seedDemo(ctx context.Context, app *pgxpool.Pool, keys *tenancy.APIKeys, cfg Config, hmacKey []byte) (Demo, error) {
	demo := Demo{TenantID: DemoTenantID}
	tctx, err := tenancy.WithTenant(ctx, DemoTenantID)
	if err != nil {
		return demo, err
	}
	err = tenancy.InTx(tctx, app, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO dealix.tenants (tenant_id, name, plan) VALUES ($1, 'Demo Trading Co.', 'growth')
			ON CONFLICT (tenant_id) DO NOTHING`, DemoTenantID)
		if err != nil || tag.RowsAffected() == 0 {
			return err // seeded before: leave its leads as the user left them
		}
		for _, l := range demoLeads {
			if _, err := tx.Exec(ctx, `INSERT INTO dealix.leads (tenant_id, name, company, email, status, source)
				VALUES ($1, $2, $3, $4, $5, 'demo')`, DemoTenantID, l.name, l.company, l.email, l.status); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return demo, fmt.Errorf("seed demo tenant: %w", err)
	}

	existing, err := keys.List(tctx)
	if err != nil {
		return demo, fmt.Errorf("seed demo key: %w", err)
	}
	for _, k := range existing {
		if k.Name == DemoKeyName && k.RevokedAt == nil {
			if err := keys.Revoke(tctx, k.ID); err != nil {
				return demo, fmt.Errorf("revoke old demo key: %w", err)
			}
		}
	}
	issued, err := keys.Create(tctx, tenancy.NewAPIKey{Name: DemoKeyName, Scopes: []string{"leads"}})
	if err != nil {
		return demo, fmt.Errorf("seed demo key: %w", err)
	}
	demo.APIKey = issued.Key

	if hmacKey != nil {
		demo.JWT, err = signJWT(hmacKey, cfg, "demo-admin", DemoTenantID, []string{apikeys.AdminScope, "leads"}, 24*time.Hour)
		if err != nil {
			return demo, err
		}
	}
	return demo, nil
}

// signJWT signs an HS256 token the server's verifier accepts.
func signJWT(key []byte, cfg Config, subject, tenant string, scopes []string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": cfg.JWTIssuer, "aud": cfg.JWTAudience, "sub": subject,
		"tenant_id": tenant, "scopes": scopes,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	token := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	token.Header["kid"] = DevKeyID
	return token.SignedString(key)
}
