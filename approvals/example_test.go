package approvals_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dealix/platform/approvals"
)

func ExamplePolicy_Evaluate() {
	policy := approvals.DefaultPolicy()
	for _, a := range []approvals.Action{
		{Kind: "outbound.email", TenantID: "11111111-1111-4111-8111-111111111111", Actor: "alice", Recipients: 50},
		{Kind: "outbound.email", TenantID: "11111111-1111-4111-8111-111111111111", Actor: "alice", Recipients: 51, Risk: 0.7},
		{Kind: "account.delete", TenantID: "11111111-1111-4111-8111-111111111111", Actor: "alice", Critical: true},
	} {
		eval, err := policy.Evaluate(a)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(a.Kind, eval.NeedsApproval, eval.Reasons)
	}
	// Output:
	// outbound.email false []
	// outbound.email true [recipients_over_limit risk_at_or_above_threshold]
	// account.delete true [critical]
}

func ExamplePolicy_perKind() {
	policy := approvals.DefaultPolicy()
	// SMS is costlier: hold anything over 10 recipients.
	sms := approvals.DefaultRule()
	sms.MaxRecipients = 10
	policy.ByKind = map[string]approvals.Rule{"outbound.sms": sms}

	eval, _ := policy.Evaluate(approvals.Action{
		Kind: "outbound.sms", TenantID: "11111111-1111-4111-8111-111111111111", Actor: "alice", Recipients: 11,
	})
	fmt.Println(eval.NeedsApproval, eval.Reasons)
	// Output: true [recipients_over_limit]
}

// A server wires the continuation to its queue in the decision's
// transaction and mounts the admin API behind its authentication.
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@localhost/app")
	if err != nil {
		return
	}
	svc, err := approvals.New(pool, approvals.Config{
		OnApprove: func(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
			// For example dlq's EnqueueTx: the job commits with the approval.
			_, err := tx.Exec(ctx, "INSERT INTO outbox (kind, payload) VALUES ($1, $2)", d.Kind, d.Payload)
			return err
		},
	})
	if err != nil {
		return
	}
	admin, err := approvals.NewAdminHandler(svc, approvals.AdminConfig{})
	if err != nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/approvals/", http.StripPrefix("/admin/approvals", admin))
}
