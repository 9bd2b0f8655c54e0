package approvals

import (
	"fmt"
	"maps"
	"math"
	"slices"
)

// Default thresholds of DefaultRule, from the gate this package implements:
// outbound sends to more than 50 recipients, a risk score of 0.7 or more,
// and every critical action need a human decision.
const (
	DefaultMaxRecipients = 50
	DefaultRiskThreshold = 0.7
)

// Reason says why an action needs approval. Reasons are stored with the
// request and returned by the admin API.
type Reason string

const (
	// ReasonRecipients: the action reaches more recipients than the rule allows.
	ReasonRecipients Reason = "recipients_over_limit"
	// ReasonRisk: the action's risk score is at or above the rule's threshold.
	ReasonRisk Reason = "risk_at_or_above_threshold"
	// ReasonCritical: the action is flagged critical.
	ReasonCritical Reason = "critical"
)

// Rule is the set of thresholds applied to one action. Its zero value is the
// strictest rule (every action needs approval); start from DefaultRule.
type Rule struct {
	// MaxRecipients is the most recipients an action may reach without
	// approval: more needs approval. Negative means no recipient limit.
	// DefaultRule: 50.
	MaxRecipients int
	// RiskThreshold: a risk score at or above it needs approval. Must be
	// zero or more and not NaN; a value above 1 turns the risk check off,
	// since scores lie within [0, 1]. DefaultRule: 0.7.
	RiskThreshold float64
	// AllowCritical lets critical actions through without approval.
	// Default false: a critical action always needs approval.
	AllowCritical bool
}

// DefaultRule is the gate's default: more than 50 recipients, risk 0.7 or
// more, or a critical action needs approval.
func DefaultRule() Rule {
	return Rule{MaxRecipients: DefaultMaxRecipients, RiskThreshold: DefaultRiskThreshold}
}

// Validate reports a rule that cannot be applied.
func (r Rule) Validate() error {
	if math.IsNaN(r.RiskThreshold) || r.RiskThreshold < 0 {
		return fmt.Errorf("%w: risk threshold %v must be zero or more", ErrInvalidPolicy, r.RiskThreshold)
	}
	return nil
}

// reasons applies r to a, returning why a needs approval (none
// means allowed). a is not validated here; Policy.Evaluate does that.
func (r Rule) reasons(a Action) []Reason {
	var buf [3]Reason // at most one per check: one allocation, in Clone
	reasons := buf[:0]
	if r.MaxRecipients >= 0 && a.Recipients > r.MaxRecipients {
		reasons = append(reasons, ReasonRecipients)
	}
	if a.Risk >= r.RiskThreshold {
		reasons = append(reasons, ReasonRisk)
	}
	if a.Critical && !r.AllowCritical {
		reasons = append(reasons, ReasonCritical)
	}
	if len(reasons) == 0 {
		return nil
	}
	return slices.Clone(reasons)
}

// TenantKind keys a rule for one action kind of one tenant.
type TenantKind struct {
	// TenantID is the tenant's canonical UUID.
	TenantID string
	// Kind is the action kind.
	Kind string
}

// Policy chooses the rule for an action: the most specific of ByTenantKind,
// ByTenant, ByKind, then Default. A rule replaces the less specific ones
// entirely (no field-by-field merging), so what applies is always one
// readable Rule. Use DefaultPolicy as the starting point.
type Policy struct {
	// Default applies when no more specific rule matches. The zero Rule is
	// the strictest; DefaultPolicy sets DefaultRule.
	Default Rule
	// ByKind holds rules per action kind, for every tenant. Optional.
	ByKind map[string]Rule
	// ByTenant holds rules per tenant (canonical UUID), for every kind.
	// Optional.
	ByTenant map[string]Rule
	// ByTenantKind holds rules for one kind of one tenant. Optional.
	ByTenantKind map[TenantKind]Rule
}

// DefaultPolicy applies DefaultRule to every action.
func DefaultPolicy() Policy {
	return Policy{Default: DefaultRule()}
}

// clone returns p with maps of its own, so a caller changing its maps
// later cannot race with Evaluate on the copy.
func (p Policy) clone() Policy {
	p.ByKind = maps.Clone(p.ByKind)
	p.ByTenant = maps.Clone(p.ByTenant)
	p.ByTenantKind = maps.Clone(p.ByTenantKind)
	return p
}

// Validate reports a rule that cannot be applied or a tenant key that is
// not a canonical UUID (it could never match).
func (p Policy) Validate() error {
	if err := p.Default.Validate(); err != nil {
		return fmt.Errorf("default rule: %w", err)
	}
	for kind, r := range p.ByKind {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("rule for kind %q: %w", kind, err)
		}
	}
	for tenant, r := range p.ByTenant {
		if err := validatePolicyTenant(tenant, r); err != nil {
			return err
		}
	}
	for key, r := range p.ByTenantKind {
		if err := validatePolicyTenant(key.TenantID, r); err != nil {
			return fmt.Errorf("kind %q: %w", key.Kind, err)
		}
	}
	return nil
}

func validatePolicyTenant(tenant string, r Rule) error {
	canonical, err := canonicalTenant(tenant)
	if err != nil || canonical != tenant {
		return fmt.Errorf("%w: tenant key %q is not a canonical UUID", ErrInvalidPolicy, tenant)
	}
	if err := r.Validate(); err != nil {
		return fmt.Errorf("rule for tenant %s: %w", tenant, err)
	}
	return nil
}

// RuleFor returns the rule that applies to kind for tenant.
func (p Policy) RuleFor(tenant, kind string) Rule {
	if r, ok := p.ByTenantKind[TenantKind{TenantID: tenant, Kind: kind}]; ok {
		return r
	}
	if r, ok := p.ByTenant[tenant]; ok {
		return r
	}
	if r, ok := p.ByKind[kind]; ok {
		return r
	}
	return p.Default
}

// Evaluation is the policy's verdict on one action.
type Evaluation struct {
	// NeedsApproval is true when at least one reason applies.
	NeedsApproval bool
	// Reasons lists why, in a fixed order: recipients, risk, critical.
	Reasons []Reason
	// Rule is the rule that was applied.
	Rule Rule
}

// Evaluate validates a and applies the rule for tenant (a canonical UUID,
// else ErrInvalidTenant) and a's kind. It is pure: no I/O, and safe for
// concurrent use as long as nobody changes p's maps meanwhile (a Service
// evaluates its own copy, taken by New).
func (p Policy) Evaluate(tenant string, a Action) (Evaluation, error) {
	if !isCanonicalTenant(tenant) {
		return Evaluation{}, fmt.Errorf("%w: %w", ErrInvalidAction, ErrInvalidTenant)
	}
	if err := a.Validate(); err != nil {
		return Evaluation{}, err
	}
	rule := p.RuleFor(tenant, a.Kind)
	reasons := rule.reasons(a)
	return Evaluation{NeedsApproval: len(reasons) > 0, Reasons: reasons, Rule: rule}, nil
}
