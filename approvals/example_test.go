package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/internal/pgtest"
	"github.com/dealix/platform/tenancy"
)

func ExamplePolicy_Evaluate() {
	const tenant = "11111111-1111-4111-8111-111111111111"
	policy := approvals.DefaultPolicy()
	for _, a := range []approvals.Action{
		{Kind: "outbound.email", Actor: "alice", Recipients: 50},
		{Kind: "outbound.email", Actor: "alice", Recipients: 51, Risk: 0.7},
		{Kind: "account.delete", Actor: "alice", Critical: true},
	} {
		eval, err := policy.Evaluate(tenant, a)
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

	eval, _ := policy.Evaluate("11111111-1111-4111-8111-111111111111", approvals.Action{
		Kind: "outbound.sms", Actor: "alice", Recipients: 11,
	})
	fmt.Println(eval.NeedsApproval, eval.Reasons)
	// Output: true [recipients_over_limit]
}

// exampleOutbox creates the table the examples' hook writes to: a stand-in
// for a queue's EnqueueTx.
func exampleOutbox(db *pgtest.DB) {
	ctx := context.Background()
	for _, stmt := range []string{
		`CREATE TABLE platform.outbox (tenant_id uuid NOT NULL, kind text NOT NULL, payload jsonb NOT NULL)`,
		`GRANT SELECT, INSERT ON platform.outbox TO ` + pgtest.AppRole,
	} {
		if _, err := db.Owner.Exec(ctx, stmt); err != nil {
			panic(err)
		}
	}
}

// writeOutbox is the continuation: it runs inside the approving
// transaction, whose tenant its context carries, so the outbox row commits
// exactly when the approval does.
func writeOutbox(ctx context.Context, tx pgx.Tx, d approvals.Decision) error {
	tenant, _ := tenancy.TenantFrom(ctx)
	_, err := tx.Exec(ctx, "INSERT INTO platform.outbox (tenant_id, kind, payload) VALUES ($1, $2, $3)",
		tenant, d.Kind, d.Payload)
	return err
}

// An action over the policy's limits is held; an admin's approval writes
// its continuation in the deciding transaction.
func ExampleService_Decide() {
	db := pgtest.ForExample()
	exampleOutbox(db)
	svc, err := approvals.New(db.App, approvals.Config{OnApprove: writeOutbox})
	if err != nil {
		panic(err)
	}

	// The request path: the tenant and the caller come from the context,
	// as the tenancy authentication middleware leaves them.
	ctx, _ := tenancy.WithPrincipal(context.Background(), tenancy.Principal{
		Subject: "alice", TenantID: "11111111-1111-4111-8111-111111111111",
	})
	res, err := svc.Request(ctx, approvals.Action{
		Kind: "outbound.email", Recipients: 120, Payload: json.RawMessage(`{"campaign": 7}`),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("allowed:", res.Allowed, res.Evaluation.Reasons)
	fmt.Println("request:", res.Request.Status)

	admin, _ := tenancy.WithPrincipal(context.Background(), tenancy.Principal{
		Subject: "sami", TenantID: "11111111-1111-4111-8111-111111111111",
	})
	d, err := svc.Decide(admin, approvals.DecideInput{
		RequestID: res.Request.ID, Decision: approvals.StatusApproved, Comment: "expected volume",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("decision:", d.Status, "by", d.DecidedBy)

	var outbox int
	if err := db.Admin.QueryRow(context.Background(), "SELECT count(*) FROM platform.outbox").Scan(&outbox); err != nil {
		panic(err)
	}
	fmt.Println("outbox rows:", outbox)

	// A second decision the other way: the first one stands.
	_, err = svc.Decide(admin, approvals.DecideInput{RequestID: res.Request.ID, Decision: approvals.StatusRejected})
	fmt.Println("already decided:", errors.Is(err, approvals.ErrAlreadyDecided))
	// Output:
	// allowed: false [recipients_over_limit]
	// request: pending
	// decision: approved by sami
	// outbox rows: 1
	// already decided: true
}

// A server wires the continuation to its queue in the decision's
// transaction and mounts the admin API behind its authentication.
func ExampleNew() {
	db := pgtest.ForExample()
	exampleOutbox(db)
	svc, err := approvals.New(db.App, approvals.Config{OnApprove: writeOutbox})
	if err != nil {
		panic(err)
	}
	admin, err := approvals.NewAdminHandler(svc, approvals.AdminConfig{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/approvals/", http.StripPrefix("/admin/approvals", admin))

	// Stands in for tenancy's authentication middleware.
	authn := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, _ := tenancy.WithPrincipal(r.Context(), tenancy.Principal{
				Subject: r.Header.Get("X-User"), TenantID: "11111111-1111-4111-8111-111111111111",
				Scopes: []string{approvals.DefaultAdminScope},
			})
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	srv := httptest.NewServer(authn(mux))
	defer srv.Close()

	ctx, _ := tenancy.WithTenant(context.Background(), "11111111-1111-4111-8111-111111111111")
	res, err := svc.Request(ctx, approvals.Action{Kind: "account.delete", Actor: "alice", Critical: true})
	if err != nil {
		panic(err)
	}

	post := func(user, path string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/approvals"+path, strings.NewReader(`{"comment": "ok"}`))
		req.Header.Set("X-User", user)
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		var body struct {
			Status any    `json:"status"`
			Type   string `json:"type"`
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &body)
		fmt.Println(user, resp.StatusCode, resp.Header.Get("Content-Type"), body.Status, body.Type)
	}
	post("alice", "/requests/"+res.Request.ID+"/approve") // the requester
	post("sami", "/requests/"+res.Request.ID+"/approve")
	// Output:
	// alice 403 application/problem+json 403 urn:dealix:approvals:self-approval
	// sami 200 application/json approved
}
