package approvals_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/dealix/platform/approvals"
	"github.com/dealix/platform/tenancy"
)

// withTestPrincipal stands in for the tenancy authentication middleware:
// it puts the principal described by test headers in the request context.
func withTestPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		subject := r.Header.Get("X-Test-Subject")
		if subject == "" {
			next.ServeHTTP(w, r)
			return
		}
		if subject == "-" { // a principal without a subject
			subject = ""
		}
		var scopes []string
		if s := r.Header.Get("X-Test-Scopes"); s != "" {
			scopes = strings.Split(s, " ")
		}
		ctx, err := tenancy.WithPrincipal(r.Context(), tenancy.Principal{
			Subject: subject, TenantID: r.Header.Get("X-Test-Tenant"), Scopes: scopes, Method: tenancy.AuthJWT,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type adminBundle struct {
	*bundle
	srv *httptest.Server
}

func setupAdmin(t *testing.T, cfg approvals.Config, admin approvals.AdminConfig) *adminBundle {
	t.Helper()
	b := setup(t, cfg)
	h, err := approvals.NewAdminHandler(b.svc, admin)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/admin/approvals/", http.StripPrefix("/admin/approvals", h))
	srv := httptest.NewServer(withTestPrincipal(mux))
	t.Cleanup(srv.Close)
	return &adminBundle{bundle: b, srv: srv}
}

// caller is who sends an admin request.
type caller struct {
	tenant, subject, scopes string
}

var (
	sami      = caller{tenantA, "sami", "approvals:admin"}
	omar      = caller{tenantA, "omar", "approvals:admin"}
	alice     = caller{tenantA, "alice", "approvals:admin"}
	outsider  = caller{tenantB, "mallory", "approvals:admin"}
	readOnly  = caller{tenantA, "rita", "approvals:read"}
	anonymous = caller{}
)

type response struct {
	status      int
	contentType string
	body        map[string]any
	raw         string
}

func (a *adminBundle) do(t testing.TB, c caller, method, path, body string) response {
	t.Helper()
	r, err := a.send(c, method, path, body)
	require.NoError(t, err)
	return r
}

// send is do without assertions, for use off the test's goroutine.
func (a *adminBundle) send(c caller, method, path, body string) (response, error) {
	req, err := http.NewRequest(method, a.srv.URL+"/admin/approvals"+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if c.subject != "" {
		req.Header.Set("X-Test-Subject", c.subject)
		req.Header.Set("X-Test-Tenant", c.tenant)
		req.Header.Set("X-Test-Scopes", c.scopes)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return response{}, err
	}
	out := response{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			return out, fmt.Errorf("body %q: %w", raw, err)
		}
	}
	return out, nil
}

func requireProblem(t testing.TB, r response, status int) {
	t.Helper()
	require.Equal(t, status, r.status, r.raw)
	require.Equal(t, "application/problem+json", r.contentType)
	require.EqualValues(t, status, r.body["status"])
}

func TestAdminAuthorization(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{})
	req := a.newPending(t, 1)

	r := a.do(t, anonymous, http.MethodGet, "/requests", "")
	requireProblem(t, r, http.StatusUnauthorized)
	r = a.do(t, caller{tenantA, "-", "approvals:admin"}, http.MethodPost, "/requests/"+req.ID+"/approve", "")
	requireProblem(t, r, http.StatusUnauthorized)
	r = a.do(t, readOnly, http.MethodGet, "/requests", "")
	requireProblem(t, r, http.StatusForbidden)
	r = a.do(t, readOnly, http.MethodPost, "/requests/"+req.ID+"/approve", "")
	requireProblem(t, r, http.StatusForbidden)
	got, err := a.svc.Get(tenantCtx(t, tenantA), req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status)

	// A configured scope replaces the default.
	custom := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{Scope: "approvals:read"})
	require.Equal(t, http.StatusOK, custom.do(t, readOnly, http.MethodGet, "/requests", "").status)
	requireProblem(t, custom.do(t, sami, http.MethodGet, "/requests", ""), http.StatusForbidden)
}

func TestAdminApproveAndAttackPath(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{})
	req := a.newPending(t, 1)

	r := a.do(t, sami, http.MethodPost, "/requests/"+req.ID+"/reject", `{"comment": "too many recipients"}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "application/json", r.contentType)
	require.Equal(t, "rejected", r.body["status"])
	require.Equal(t, "sami", r.body["decided_by"])
	require.Equal(t, false, r.body["replayed"])

	// Same decision again: idempotent success.
	r = a.do(t, sami, http.MethodPost, "/requests/"+req.ID+"/reject", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, true, r.body["replayed"])

	// Someone else approves: 409 with the recorded decision.
	r = a.do(t, omar, http.MethodPost, "/requests/"+req.ID+"/approve", "")
	requireProblem(t, r, http.StatusConflict)
	require.Equal(t, approvals.ProblemAlreadyDecided, r.body["type"])
	decision, ok := r.body["decision"].(map[string]any)
	require.True(t, ok, r.raw)
	require.Equal(t, "rejected", decision["status"])
	require.Equal(t, "sami", decision["decided_by"])
	require.Equal(t, "too many recipients", decision["comment"])

	r = a.do(t, omar, http.MethodGet, "/requests/"+req.ID, "")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, "rejected", r.body["status"])
	require.Equal(t, "sami", r.body["decided_by"])
	require.Zero(t, countContinuations(t, a.db.Admin, req.ID))

	r = a.do(t, omar, http.MethodGet, "/requests/"+req.ID+"/audit", "")
	require.Equal(t, http.StatusOK, r.status)
	entries, ok := r.body["entries"].([]any)
	require.True(t, ok, r.raw)
	var results []string
	for _, e := range entries {
		results = append(results, e.(map[string]any)["result"].(string))
	}
	require.Equal(t, []string{"accepted", "replayed", "conflict"}, results)

	// Approval of another request runs its continuation once.
	other := a.newPending(t, 2)
	r = a.do(t, sami, http.MethodPost, "/requests/"+other.ID+"/approve", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, 1, countContinuations(t, a.db.Admin, other.ID))
}

func TestAdminRefusals(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{TTL: time.Hour}, approvals.AdminConfig{MaxBodyBytes: 64})
	req := a.newPending(t, 1)
	approve := "/requests/" + req.ID + "/approve"

	r := a.do(t, alice, http.MethodPost, approve, "")
	requireProblem(t, r, http.StatusForbidden)
	require.Equal(t, approvals.ProblemSelfApproval, r.body["type"])

	// Another tenant's admin cannot see or decide it.
	requireProblem(t, a.do(t, outsider, http.MethodGet, "/requests/"+req.ID, ""), http.StatusNotFound)
	requireProblem(t, a.do(t, outsider, http.MethodPost, approve, ""), http.StatusNotFound)
	requireProblem(t, a.do(t, outsider, http.MethodGet, "/requests/"+req.ID+"/audit", ""), http.StatusNotFound)
	r = a.do(t, outsider, http.MethodGet, "/requests", "")
	require.Equal(t, http.StatusOK, r.status)
	require.Empty(t, r.body["requests"])

	bad := map[string]struct{ method, path, body string }{
		"bad id":             {http.MethodGet, "/requests/not-a-uuid", ""},
		"bad id on decide":   {http.MethodPost, "/requests/123/approve", ""},
		"bad id on audit":    {http.MethodGet, "/requests/123/audit", ""},
		"bad JSON":           {http.MethodPost, approve, `{"comment":`},
		"JSON array":         {http.MethodPost, approve, `["ok"]`},
		"unknown member":     {http.MethodPost, approve, `{"decision":"approved"}`},
		"trailing data":      {http.MethodPost, approve, `{"comment":"a"} {}`},
		"wrong type":         {http.MethodPost, approve, `{"comment": 5}`},
		"oversized body":     {http.MethodPost, approve, `{"comment":"` + strings.Repeat("x", 64) + `"}`},
		"unknown status":     {http.MethodGet, "/requests?status=done", ""},
		"bad limit":          {http.MethodGet, "/requests?limit=ten", ""},
		"zero limit":         {http.MethodGet, "/requests?limit=0", ""},
		"bad cursor":         {http.MethodGet, "/requests?cursor=abc", ""},
		"repeated parameter": {http.MethodGet, "/requests?status=pending&status=approved", ""},
		"unknown parameter":  {http.MethodGet, "/requests?state=pending", ""},
		"malformed query":    {http.MethodGet, "/requests?status=%zz", ""},
	}
	for name, tc := range bad {
		r := a.do(t, sami, tc.method, tc.path, tc.body)
		require.Equal(t, http.StatusBadRequest, r.status, "%s: %s", name, r.raw)
		requireProblem(t, r, http.StatusBadRequest)
	}
	requireProblem(t, a.do(t, sami, http.MethodGet, "/requests/99999999-9999-4999-8999-999999999999", ""), http.StatusNotFound)
	requireProblem(t, a.do(t, sami, http.MethodPost, "/requests/99999999-9999-4999-8999-999999999999/reject", ""), http.StatusNotFound)
	requireProblem(t, a.do(t, sami, http.MethodGet, "/nowhere", ""), http.StatusNotFound)
	r = a.do(t, sami, http.MethodDelete, "/requests/"+req.ID, "")
	requireProblem(t, r, http.StatusMethodNotAllowed)
	requireProblem(t, a.do(t, sami, http.MethodGet, approve, ""), http.StatusMethodNotAllowed)

	got, err := a.svc.Get(tenantCtx(t, tenantA), req.ID)
	require.NoError(t, err)
	require.Equal(t, approvals.StatusPending, got.Status, "no refused call changed the request")

	// Expired: 409 with the expired problem type.
	a.age(t, time.Hour)
	r = a.do(t, sami, http.MethodPost, approve, "")
	requireProblem(t, r, http.StatusConflict)
	require.Equal(t, approvals.ProblemExpired, r.body["type"])
	require.Equal(t, "expired", r.body["request_status"])
	require.Zero(t, countContinuations(t, a.db.Admin, req.ID))
}

func TestAdminListPaging(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{})
	const total = 7
	var ids []string
	for i := range total {
		ids = append(ids, a.newPending(t, i).ID)
	}
	_, err := a.svc.Decide(tenantCtx(t, tenantA), decideInput(ids[0], approvals.StatusApproved, "sami"))
	require.NoError(t, err)

	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, total, "paging must end")
		path := "/requests?limit=3"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := a.do(t, sami, http.MethodGet, path, "")
		require.Equal(t, http.StatusOK, r.status, r.raw)
		reqs := r.body["requests"].([]any)
		require.LessOrEqual(t, len(reqs), 3)
		for _, req := range reqs {
			seen = append(seen, req.(map[string]any)["id"].(string))
		}
		next, _ := r.body["next"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	want := make([]string, total)
	for i, id := range ids {
		want[total-1-i] = id // newest first
	}
	require.Equal(t, want, seen)

	r := a.do(t, sami, http.MethodGet, "/requests?status=approved", "")
	require.Equal(t, http.StatusOK, r.status)
	reqs := r.body["requests"].([]any)
	require.Len(t, reqs, 1)
	require.Equal(t, ids[0], reqs[0].(map[string]any)["id"])
	r = a.do(t, sami, http.MethodGet, "/requests?status=pending&limit=100000", "")
	require.Equal(t, http.StatusOK, r.status, "a limit over the cap is lowered to it")
	require.Len(t, r.body["requests"], total-1)
}

// Fifty admins race over HTTP: every answer is consistent with the one
// recorded decision.
func TestAdminConcurrentDecisions(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{})
	req := a.newPending(t, 1)
	const n = 50
	responses := make([]response, n)
	errs := make([]error, n)
	actions := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		actions[i] = []string{"approve", "reject"}[i%2]
		wg.Go(func() {
			responses[i], errs[i] = a.send(caller{tenantA, fmt.Sprintf("admin-%d", i), "approvals:admin"},
				http.MethodPost, "/requests/"+req.ID+"/"+actions[i], "")
		})
	}
	wg.Wait()
	got, err := a.svc.Get(tenantCtx(t, tenantA), req.ID)
	require.NoError(t, err)
	winningAction := map[approvals.Status]string{approvals.StatusApproved: "approve", approvals.StatusRejected: "reject"}[got.Status]
	require.NotEmpty(t, winningAction)
	fresh := 0
	for i, r := range responses {
		require.NoError(t, errs[i])
		if actions[i] == winningAction {
			require.Equal(t, http.StatusOK, r.status, r.raw)
			require.Equal(t, got.DecidedBy, r.body["decided_by"])
			if r.body["replayed"] == false {
				fresh++
			}
			continue
		}
		requireProblem(t, r, http.StatusConflict)
		require.Equal(t, string(got.Status), r.body["decision"].(map[string]any)["status"])
	}
	require.Equal(t, 1, fresh)
	require.Len(t, a.auditTrail(t, req.ID), n)
}

func TestAdminCommentIsValidated(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{}, approvals.AdminConfig{})
	req := a.newPending(t, 1)
	long := `{"comment":"` + strings.Repeat("x", approvals.MaxCommentLength+1) + `"}`
	requireProblem(t, a.do(t, sami, http.MethodPost, "/requests/"+req.ID+"/approve", long), http.StatusBadRequest)
	require.Zero(t, countContinuations(t, a.db.Admin, req.ID))

	r := a.do(t, sami, http.MethodPost, "/requests/"+req.ID+"/approve", `{"comment":"ok to send"}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "ok to send", r.body["comment"])

	_, err := approvals.NewAdminHandler(nil, approvals.AdminConfig{})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
	_, err = approvals.NewAdminHandler(a.svc, approvals.AdminConfig{MaxBodyBytes: -1})
	require.ErrorIs(t, err, approvals.ErrInvalidConfig)
}

// A failed hook is a server-side failure (500, problem+json, nothing
// leaked), the request stays pending, and the audit endpoint shows the
// failed attempt with its error.
func TestAdminShowsFailedHooks(t *testing.T) {
	t.Parallel()
	a := setupAdmin(t, approvals.Config{OnApprove: func(context.Context, pgx.Tx, approvals.Decision) error {
		return errors.New("outbox unavailable")
	}}, approvals.AdminConfig{Logger: slog.New(slog.DiscardHandler)})
	req := a.newPending(t, 1)

	r := a.do(t, sami, http.MethodPost, "/requests/"+req.ID+"/approve", "")
	requireProblem(t, r, http.StatusInternalServerError)
	require.NotContains(t, r.raw, "outbox unavailable")
	r = a.do(t, sami, http.MethodGet, "/requests/"+req.ID, "")
	require.Equal(t, "pending", r.body["status"])

	r = a.do(t, sami, http.MethodGet, "/requests/"+req.ID+"/audit", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	entries := r.body["entries"].([]any)
	require.Len(t, entries, 1)
	entry := entries[0].(map[string]any)
	require.Equal(t, "hook_failed", entry["result"])
	require.Equal(t, "pending", entry["status_after"])
	require.Equal(t, "sami", entry["actor"])
	require.Contains(t, entry["error"], "outbox unavailable")
}
