package rls

import "context"

// Scoped is what the library's context value carries: package tenancy
// stores its identity (tenant and principal) as one value satisfying it, so
// packages that must not import tenancy read the same tenant.
type Scoped interface {
	// TenantID is the canonical tenant id, or "" for none.
	TenantID() string
}

// contextKey is the one context key the library's packages share for the
// tenant.
type contextKey struct{}

// WithScope returns a copy of ctx carrying v. Package tenancy is its
// only caller outside tests.
func WithScope(ctx context.Context, v Scoped) context.Context {
	return context.WithValue(ctx, contextKey{}, v)
}

// ScopeFrom returns the value WithScope stored in ctx, or nil.
func ScopeFrom(ctx context.Context) Scoped {
	v, _ := ctx.Value(contextKey{}).(Scoped)
	return v
}

// TenantFrom returns the tenant ctx carries, if any.
func TenantFrom(ctx context.Context) (string, bool) {
	if v := ScopeFrom(ctx); v != nil {
		if t := v.TenantID(); t != "" {
			return t, true
		}
	}
	return "", false
}

// tenantOnly is a Scoped with no principal.
type tenantOnly string

func (t tenantOnly) TenantID() string { return string(t) }

// WithTenant returns a copy of ctx carrying tenant, validated and in
// canonical form. Public code uses tenancy.WithTenant, which also keeps a
// principal already in ctx.
func WithTenant(ctx context.Context, tenant string) (context.Context, error) {
	canonical, err := ParseTenant(tenant)
	if err != nil {
		return ctx, err
	}
	return WithScope(ctx, tenantOnly(canonical)), nil
}
