package tenancy

import (
	"context"
	"slices"

	"github.com/dealix/platform/internal/errs"
	"github.com/dealix/platform/internal/rls"
)

// ErrInvalidTenant is returned for a tenant id that is not a UUID. Such an
// id is refused before it can reach SQL. It is the same value in every
// package of the library.
var ErrInvalidTenant = errs.ErrInvalidTenant

// AuthMethod says how a principal authenticated.
type AuthMethod string

const (
	// AuthJWT is a bearer JSON Web Token.
	AuthJWT AuthMethod = "jwt"
	// AuthAPIKey is an API key issued by this package.
	AuthAPIKey AuthMethod = "api_key"
)

// Principal is the authenticated caller of a request.
type Principal struct {
	// Subject identifies the caller: the JWT "sub" claim, or the API key's id.
	Subject string
	// TenantID is the tenant the caller acts for, a canonical UUID string.
	TenantID string
	// Scopes are the permissions granted to the caller (JWT "scope" or
	// "scopes"/"roles" claims, or the API key's scopes).
	Scopes []string
	// Method is how the caller authenticated.
	Method AuthMethod
	// KeyID names the credential: the JWT "kid" or the API key's prefix.
	KeyID string
}

// HasScope reports whether the principal was granted scope.
func (p Principal) HasScope(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// identity is what the context carries: a tenant, and the principal when
// one authenticated. The tenant and the principal travel together in one
// value, so an authenticated request pays for one context entry, not two.
// It is stored under the library's shared key (internal/rls), so packages
// that do not import tenancy (durable, dlq) read the same tenant.
type identity struct {
	tenant       string
	principal    Principal
	hasPrincipal bool
}

// TenantID implements rls.Scoped.
func (id *identity) TenantID() string { return id.tenant }

func identityFrom(ctx context.Context) *identity {
	id, _ := rls.ScopeFrom(ctx).(*identity)
	return id
}

// WithTenant returns a copy of ctx carrying tenantID, validated and in
// canonical form. A principal already in ctx stays there.
func WithTenant(ctx context.Context, tenantID string) (context.Context, error) {
	canonical, err := rls.ParseTenant(tenantID)
	if err != nil {
		return ctx, ErrInvalidTenant
	}
	next := &identity{tenant: canonical}
	if prev := identityFrom(ctx); prev != nil {
		next.principal, next.hasPrincipal = prev.principal, prev.hasPrincipal
	}
	return rls.WithScope(ctx, next), nil
}

// TenantFrom returns the tenant carried by ctx, if any.
func TenantFrom(ctx context.Context) (string, bool) {
	return rls.TenantFrom(ctx)
}

// WithPrincipal returns a copy of ctx carrying p and p's tenant.
func WithPrincipal(ctx context.Context, p Principal) (context.Context, error) {
	canonical, err := rls.ParseTenant(p.TenantID)
	if err != nil {
		return ctx, ErrInvalidTenant
	}
	p.TenantID = canonical
	return rls.WithScope(ctx, &identity{tenant: canonical, principal: p, hasPrincipal: true}), nil
}

// PrincipalFrom returns the principal carried by ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	if id := identityFrom(ctx); id != nil && id.hasPrincipal {
		return id.principal, true
	}
	return Principal{}, false
}

// withVerifiedPrincipal is WithPrincipal for a principal whose tenant an
// authenticator has just produced: when it is already a canonical UUID the
// second parse is skipped (it sits on every authenticated request).
func withVerifiedPrincipal(ctx context.Context, p Principal) (context.Context, error) {
	if !isCanonicalUUID(p.TenantID) {
		return WithPrincipal(ctx, p)
	}
	return &principalCtx{Context: ctx, id: identity{tenant: p.TenantID, principal: p, hasPrincipal: true}}, nil
}

// principalCtx is the context an authenticated request carries: its
// parent and the identity, answered under the library's shared key as
// rls.WithScope would store it. It is one allocation where context.WithValue
// and the identity are two, on every authenticated request.
type principalCtx struct {
	context.Context
	id identity
	// scopes backs the principal's Scopes when the JWT middleware fills
	// it: a token's few scopes need no allocation of their own.
	scopes [4]string
}

// Value implements context.Context.
func (c *principalCtx) Value(key any) any {
	if key == scopeKey {
		return &c.id
	}
	return c.Context.Value(key)
}

// scopeKey is the key internal/rls stores the scope under, learnt once by
// letting rls.ScopeFrom look it up in a probe.
var scopeKey = func() any {
	var p keyProbe
	rls.ScopeFrom(&p)
	if p.key == nil {
		panic("tenancy: rls.ScopeFrom asked for no key")
	}
	return p.key
}()

type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}
