package approvals_test

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
)

func TestDefaultRuleBoundaries(t *testing.T) {
	t.Parallel()
	policy := approvals.DefaultPolicy()
	base := approvals.Action{Kind: "outbound.email", Actor: "alice"}
	cases := []struct {
		name    string
		edit    func(*approvals.Action)
		reasons []approvals.Reason
	}{
		{"50 recipients allowed", func(a *approvals.Action) { a.Recipients = 50 }, nil},
		{"51 recipients held", func(a *approvals.Action) { a.Recipients = 51 }, []approvals.Reason{approvals.ReasonRecipients}},
		{"risk 0.69 allowed", func(a *approvals.Action) { a.Risk = 0.69 }, nil},
		{"risk 0.7 held", func(a *approvals.Action) { a.Risk = 0.7 }, []approvals.Reason{approvals.ReasonRisk}},
		{"risk 1 held", func(a *approvals.Action) { a.Risk = 1 }, []approvals.Reason{approvals.ReasonRisk}},
		{"critical held", func(a *approvals.Action) { a.Critical = true }, []approvals.Reason{approvals.ReasonCritical}},
		{"nothing risky allowed", func(a *approvals.Action) {}, nil},
		{"all reasons in order", func(a *approvals.Action) { a.Recipients, a.Risk, a.Critical = 1000, 0.95, true },
			[]approvals.Reason{approvals.ReasonRecipients, approvals.ReasonRisk, approvals.ReasonCritical}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := base
			tc.edit(&a)
			eval, err := policy.Evaluate(tenantA, a)
			require.NoError(t, err)
			require.Equal(t, tc.reasons, eval.Reasons)
			require.Equal(t, len(tc.reasons) > 0, eval.NeedsApproval)
		})
	}
}

func TestPolicyPerKindAndTenant(t *testing.T) {
	t.Parallel()
	strict := approvals.Rule{MaxRecipients: 10, RiskThreshold: 0.5}
	lenient := approvals.Rule{MaxRecipients: -1, RiskThreshold: 2, AllowCritical: true}
	policy := approvals.DefaultPolicy()
	policy.ByKind = map[string]approvals.Rule{"outbound.sms": strict}
	policy.ByTenant = map[string]approvals.Rule{tenantB: lenient}
	policy.ByTenantKind = map[approvals.TenantKind]approvals.Rule{{TenantID: tenantB, Kind: "outbound.sms"}: strict}
	require.NoError(t, policy.Validate())

	eval := func(tenant, kind string, recipients int, risk float64, critical bool) bool {
		t.Helper()
		e, err := policy.Evaluate(tenant, approvals.Action{Kind: kind, Actor: "a",
			Recipients: recipients, Risk: risk, Critical: critical})
		require.NoError(t, err)
		return e.NeedsApproval
	}
	// The kind rule is stricter than the default for every tenant without its own rule.
	require.False(t, eval(tenantA, "outbound.email", 11, 0.5, false))
	require.True(t, eval(tenantA, "outbound.sms", 11, 0, false))
	require.True(t, eval(tenantA, "outbound.sms", 0, 0.5, false))
	require.False(t, eval(tenantA, "outbound.sms", 10, 0.49, false))
	// Tenant B's rule replaces the default and the kind rule entirely...
	require.False(t, eval(tenantB, "outbound.email", 1_000_000, 1, true))
	// ...but its tenant-and-kind rule is the most specific.
	require.True(t, eval(tenantB, "outbound.sms", 11, 0, false))
}

func TestPolicyRejectsBadInput(t *testing.T) {
	t.Parallel()
	policy := approvals.DefaultPolicy()
	good := approvals.Action{Kind: "k", Actor: "a"}
	for name, edit := range map[string]func(*approvals.Action){
		"empty kind":       func(a *approvals.Action) { a.Kind = "" },
		"long kind":        func(a *approvals.Action) { a.Kind = string(make([]byte, approvals.MaxKindLength+1)) },
		"no actor":         func(a *approvals.Action) { a.Actor = "" },
		"negative count":   func(a *approvals.Action) { a.Recipients = -1 },
		"NaN risk":         func(a *approvals.Action) { a.Risk = math.NaN() },
		"risk above 1":     func(a *approvals.Action) { a.Risk = 1.01 },
		"negative risk":    func(a *approvals.Action) { a.Risk = -0.1 },
		"payload not JSON": func(a *approvals.Action) { a.Payload = json.RawMessage(`{"a":`) },
		"invalid UTF-8":    func(a *approvals.Action) { a.Kind = "\xff" },
		"NUL in kind":      func(a *approvals.Action) { a.Kind = "a\x00b" },
		"NUL in actor":     func(a *approvals.Action) { a.Actor = "a\x00" },
		"NUL in key":       func(a *approvals.Action) { a.IdempotencyKey = "\x00" },
		"NUL in payload":   func(a *approvals.Action) { a.Payload = json.RawMessage(`{"a":"\u0000"}`) },
	} {
		a := good
		edit(&a)
		_, err := policy.Evaluate(tenantA, a)
		require.ErrorIs(t, err, approvals.ErrInvalidAction, name)
	}
	_, err := policy.Evaluate(tenantA, good)
	require.NoError(t, err)
	for _, tenant := range []string{"", "tenant-a", "0D8A4A52-1D11-4C39-9A52-5F0A0A0A0A0A", "{" + tenantA + "}"} {
		_, err := policy.Evaluate(tenant, good)
		require.ErrorIs(t, err, approvals.ErrInvalidTenant, tenant)
	}

	bad := approvals.DefaultPolicy()
	bad.ByKind = map[string]approvals.Rule{"k": {RiskThreshold: math.NaN()}}
	require.ErrorIs(t, bad.Validate(), approvals.ErrInvalidPolicy)
	bad = approvals.DefaultPolicy()
	bad.ByTenant = map[string]approvals.Rule{"11111111-1111-4111-8111-11111111111A": approvals.DefaultRule()}
	require.ErrorIs(t, bad.Validate(), approvals.ErrInvalidPolicy, "a non-canonical tenant key could never match")

}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	_, err := approvals.New(nil, approvals.Config{})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
	_, err = approvals.New(db.App, approvals.Config{TTL: -time.Second})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
	_, err = approvals.New(db.App, approvals.Config{MaxPayloadBytes: -1})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
	bad := approvals.DefaultPolicy()
	bad.Default.RiskThreshold = -0.5
	_, err = approvals.New(db.App, approvals.Config{Policy: &bad})
	require.ErrorIs(t, err, approvals.ErrInvalidPolicy)
	svc, err := approvals.New(db.App, approvals.Config{})
	require.NoError(t, err)
	require.Equal(t, approvals.DefaultRule(), svc.Policy().Default, "nil Policy means DefaultPolicy")
	_, err = approvals.New(db.App, approvals.Config{TTL: time.Nanosecond})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig, "below the database's resolution")
	_, err = approvals.NewSweeper(nil, approvals.SweeperConfig{})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
}

// New copies the policy, maps included: a caller changing its maps while
// the service evaluates neither races (go test -race) nor changes the
// service's rules.
func TestNewCopiesThePolicy(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	lax := approvals.Rule{MaxRecipients: -1, RiskThreshold: 2, AllowCritical: true}
	policy := approvals.DefaultPolicy()
	policy.ByKind = map[string]approvals.Rule{"outbound.sms": lax}
	policy.ByTenant = map[string]approvals.Rule{tenantB: lax}
	policy.ByTenantKind = map[approvals.TenantKind]approvals.Rule{{TenantID: tenantB, Kind: "k"}: lax}
	svc, err := approvals.New(db.App, approvals.Config{Policy: &policy})
	require.NoError(t, err)

	ctx := tenantCtx(t, tenantA)
	sms := approvals.Action{Kind: "outbound.sms", Actor: "alice", Recipients: 1000, Critical: true}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		strict := approvals.Rule{}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Tighten every rule, again and again, in the caller's maps.
			policy.ByKind["outbound.sms"] = strict
			policy.ByKind[fmt.Sprint("kind-", i%64)] = strict
			policy.ByTenant[tenantA] = strict
			policy.ByTenantKind[approvals.TenantKind{TenantID: tenantA, Kind: "outbound.sms"}] = strict
			delete(policy.ByKind, fmt.Sprint("kind-", (i+32)%64))
		}
	})
	for range 5000 {
		// An allowed action never reaches the database: this is the
		// service's Evaluate, on the goroutine racing the writer above.
		res, err := svc.Request(ctx, sms)
		require.NoError(t, err)
		require.True(t, res.Allowed, "the service's rules are the ones given to New")
		require.Equal(t, lax, res.Evaluation.Rule)
		// Reading the policy back hands out a copy too.
		got := svc.Policy()
		got.ByKind["outbound.sms"] = approvals.Rule{}
	}
	close(stop)
	wg.Wait()
	eval, err := svc.Policy().Evaluate(tenantA, sms)
	require.NoError(t, err)
	require.False(t, eval.NeedsApproval)
}
