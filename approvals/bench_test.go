package approvals_test

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
)

func BenchmarkEvaluate(b *testing.B) {
	a := approvals.Action{Kind: "outbound.email", Actor: "alice", Recipients: 51, Risk: 0.7,
		Payload: json.RawMessage(`{"campaign":1}`)}
	configured := approvals.DefaultPolicy()
	configured.ByKind = map[string]approvals.Rule{"outbound.sms": approvals.DefaultRule()}
	configured.ByTenant = map[string]approvals.Rule{tenantB: approvals.DefaultRule()}
	configured.ByTenantKind = map[approvals.TenantKind]approvals.Rule{{TenantID: tenantA, Kind: "outbound.email"}: approvals.DefaultRule()}
	for name, policy := range map[string]approvals.Policy{"default": approvals.DefaultPolicy(), "per-tenant-and-kind": configured} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				eval, err := policy.Evaluate(tenantA, a)
				if err != nil || !eval.NeedsApproval {
					b.Fatal(eval, err)
				}
			}
		})
	}
}

func benchService(b *testing.B) (*pgtest.DB, *approvals.Service) {
	b.Helper()
	db := pgtest.New(b)
	createContinuations(b, db)
	svc, err := approvals.New(db.App, approvals.Config{
		OnApprove: enqueueContinuation, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return db, svc
}

func benchAction(i int) approvals.Action {
	return approvals.Action{Kind: "outbound.email", Actor: "alice", Recipients: 51,
		Payload: json.RawMessage(`{"campaign":` + strconv.Itoa(i) + `}`)}
}

// BenchmarkRequest stores one new pending request per op (one transaction).
func BenchmarkRequest(b *testing.B) {
	_, svc := benchService(b)
	ctx := tenantCtx(b, tenantA)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		res, err := svc.Request(ctx, benchAction(i))
		if err != nil || !res.Created {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkRequestExisting asks again for an action already held.
func BenchmarkRequestExisting(b *testing.B) {
	_, svc := benchService(b)
	ctx := tenantCtx(b, tenantA)
	if _, err := svc.Request(ctx, benchAction(0)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := svc.Request(ctx, benchAction(0))
		if err != nil || res.Created {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkDecide approves one pending request per op: the conditional
// update, the continuation written by the hook and the audit row, in one
// transaction.
func BenchmarkDecide(b *testing.B) {
	_, svc := benchService(b)
	ctx := tenantCtx(b, tenantA)
	ids := make([]string, b.N)
	for i := range ids {
		res, err := svc.Request(ctx, benchAction(i))
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = res.Request.ID
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := svc.Decide(ctx, approvals.DecideInput{RequestID: ids[i],
			Decision: approvals.StatusApproved, Decider: "sami"})
		if err != nil || d.Replayed {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkDecideReplay repeats a decision already recorded.
func BenchmarkDecideReplay(b *testing.B) {
	_, svc := benchService(b)
	ctx := tenantCtx(b, tenantA)
	res, err := svc.Request(ctx, benchAction(0))
	if err != nil {
		b.Fatal(err)
	}
	in := approvals.DecideInput{RequestID: res.Request.ID, Decision: approvals.StatusApproved, Decider: "sami"}
	if _, err := svc.Decide(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := svc.Decide(ctx, in)
		if err != nil || !d.Replayed {
			b.Fatal(d, err)
		}
	}
}
