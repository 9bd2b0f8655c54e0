package launchgates

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

// approvalsPaths are where the approvals admin API may list requests; the
// first that is not 404 is used.
var approvalsPaths = []string{"/admin/approvals", "/admin/approvals/requests"}

// findString looks for the first of keys (dotted paths) holding a
// non-empty string or number in doc.
func findString(doc map[string]any, keys ...string) string {
	for _, key := range keys {
		var v any = doc
		for _, part := range strings.Split(key, ".") {
			obj, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = obj[part]
		}
		switch x := v.(type) {
		case string:
			if x != "" {
				return x
			}
		case float64:
			return fmt.Sprint(x)
		}
	}
	return ""
}

// decide posts a decision on the approval request id, trying the admin
// API's two layouts.
func (p probe) decide(ctx context.Context, id, decision string) (answer, error) {
	var a answer
	var err error
	for _, base := range approvalsPaths {
		a, err = p.do(ctx, http.MethodPost, base+"/"+id+"/"+decision, p.cfg.AdminToken, `{"comment":"`+ProbeName+`"}`)
		if err != nil || a.status != http.StatusNotFound {
			return a, err
		}
	}
	return a, err
}

// getApproval reads the approval request id.
func (p probe) getApproval(ctx context.Context, id string) (map[string]any, error) {
	var last answer
	for _, base := range approvalsPaths {
		a, err := p.do(ctx, http.MethodGet, base+"/"+id, p.cfg.AdminToken, "")
		if err != nil {
			return nil, err
		}
		if a.status == http.StatusOK {
			var doc map[string]any
			return doc, a.json(&doc)
		}
		last = a
	}
	return nil, fmt.Errorf("GET the approval request %s: %s", id, last)
}

// approvals is GV1: the admin API answers (403 to a non-admin), a campaign
// the policy holds waits with 202, a rejection is recorded, and a second
// decision cannot flip it.
func (p probe) approvals(ctx context.Context) (string, error) {
	if p.cfg.AdminToken == "" {
		return "", errors.New("no admin credential configured")
	}
	var listed string
	var err error
	for _, base := range approvalsPaths {
		_, evidence, e := p.adminAnswers(ctx, base)
		if e == nil {
			listed, err = base+": "+strings.Join(evidence, ", "), nil
			break
		}
		err = cmpErr(err, e) // the first layout's refusal says the most
	}
	if err != nil {
		return "", err
	}
	requester := p.cfg.UserToken
	if requester == "" {
		requester = p.cfg.AdminToken
	}
	held, err := p.do(ctx, http.MethodPost, "/api/v1/outbound/campaigns", requester, p.cfg.CampaignBody(),
		"Idempotency-Key", "gate-"+randomHex(8))
	if err != nil {
		return "", err
	}
	if held.status != http.StatusAccepted {
		return "", fmt.Errorf("%s; POST /api/v1/outbound/campaigns with 51 recipients: %s, want 202 (held for approval)", listed, held)
	}
	var doc map[string]any
	if err := held.json(&doc); err != nil {
		return "", err
	}
	id := findString(doc, "approval_id", "request_id", "approval.id", "approval_request_id")
	if id == "" {
		if u := findString(doc, "status_url", "approval_url"); u != "" {
			id = path.Base(u)
		}
	}
	if id == "" {
		return "", fmt.Errorf("the held campaign's answer names no approval request: %s", held)
	}
	rejected, err := p.decide(ctx, id, "reject")
	if err != nil {
		return "", err
	}
	if rejected.status != http.StatusOK {
		return "", fmt.Errorf("reject %s: %s, want 200", id, rejected)
	}
	before, err := p.getApproval(ctx, id)
	if err != nil {
		return "", err
	}
	flip, err := p.decide(ctx, id, "approve")
	if err != nil {
		return "", err
	}
	if flip.status < 400 || flip.status >= 500 {
		return "", fmt.Errorf("a second decision (approve after reject) on %s: %s, want a 4xx refusal", id, flip)
	}
	after, err := p.getApproval(ctx, id)
	if err != nil {
		return "", err
	}
	status, decider := findString(after, "status"), findString(after, "decided_by")
	if status != "rejected" || decider != findString(before, "decided_by") {
		return "", fmt.Errorf("after a second decision the request is %s by %q, want rejected by %q", status, decider, findString(before, "decided_by"))
	}
	return fmt.Sprintf("%s; campaign of 51 held (202, request %s); rejected; a second decision (approve) refused %d; still status=rejected decided_by=%s",
		listed, id, flip.status, decider), nil
}

// dealEvidence closes a new deal and waits for its evidence record: who,
// when, amount and the close request's correlation id.
func (p probe) dealEvidence(ctx context.Context) (string, error) {
	if p.cfg.AdminToken == "" {
		return "", errors.New("no credential configured")
	}
	created, err := p.do(ctx, http.MethodPost, "/api/v1/deals", p.cfg.AdminToken, p.cfg.DealBody, "Idempotency-Key", "gate-"+randomHex(8))
	if err != nil {
		return "", err
	}
	if created.status != http.StatusCreated {
		return "", fmt.Errorf("POST /api/v1/deals: %s, want 201", created)
	}
	var deal map[string]any
	if err := created.json(&deal); err != nil {
		return "", err
	}
	id := findString(deal, "id", "deal.id")
	if id == "" {
		return "", fmt.Errorf("the created deal has no id: %s", created)
	}
	correlation := "gate-close-" + randomHex(6)
	closeAnswer, err := p.do(ctx, http.MethodPost, "/api/v1/deals/"+id+"/close", p.cfg.AdminToken, p.cfg.CloseBody,
		"Idempotency-Key", "gate-"+randomHex(8), "X-Correlation-ID", correlation)
	if err != nil {
		return "", err
	}
	if closeAnswer.status != http.StatusOK && closeAnswer.status != http.StatusAccepted {
		return "", fmt.Errorf("POST /api/v1/deals/%s/close: %s, want 200 or 202", id, closeAnswer)
	}
	start := time.Now()
	for {
		evidence, where, err := p.evidenceOf(ctx, id)
		if err != nil {
			return "", err
		}
		if evidence != nil {
			got := findString(evidence, "correlation_id")
			if got != "" && got != correlation {
				return "", fmt.Errorf("deal %s's evidence has correlation id %q, want the close request's %s", id, got, correlation)
			}
			return fmt.Sprintf("deal %s closed; evidence at %s after %s (correlation_id=%s, fields %s)", id, where,
				time.Since(start).Round(time.Millisecond), got, strings.Join(sortedKeys(evidence), ", ")), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("deal %s closed but no evidence record appeared within %s", id, time.Since(start).Round(time.Millisecond))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// evidenceOf reads deal id's evidence: GET /api/v1/deals/{id}/evidence,
// or the evidence member of the deal. nil while it is not written.
func (p probe) evidenceOf(ctx context.Context, id string) (map[string]any, string, error) {
	where := "/api/v1/deals/" + id + "/evidence"
	a, err := p.do(ctx, http.MethodGet, where, p.cfg.AdminToken, "")
	if err != nil {
		return nil, "", err
	}
	if a.status == http.StatusOK {
		var doc map[string]any
		if err := a.json(&doc); err != nil {
			return nil, "", err
		}
		if ev, ok := doc["evidence"].(map[string]any); ok {
			return ev, where, nil
		}
		if items, ok := doc["items"].([]any); ok {
			if len(items) == 0 {
				return nil, "", nil
			}
			ev, _ := items[0].(map[string]any)
			return ev, where, nil
		}
		return doc, where, nil
	}
	where = "/api/v1/deals/" + id
	a, err = p.do(ctx, http.MethodGet, where, p.cfg.AdminToken, "")
	if err != nil {
		return nil, "", err
	}
	if a.status != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s", where, a)
	}
	var doc map[string]any
	if err := a.json(&doc); err != nil {
		return nil, "", err
	}
	ev, _ := doc["evidence"].(map[string]any)
	return ev, where + " (evidence)", nil
}
