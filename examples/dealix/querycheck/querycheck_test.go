package querycheck

import (
	"strings"
	"testing"
)

func TestNamesTenant(t *testing.T) {
	for _, c := range []struct {
		sql  string
		want bool
	}{
		{"SELECT name FROM dealix.leads WHERE tenant_id = $1 AND id = $2", true},
		{"INSERT INTO dealix.leads (tenant_id, id, name) VALUES ($1, $2, $3)", true},
		{"SELECT name FROM dealix.leads l JOIN dealix.deals d ON d.tenant_id = l.tenant_id AND d.lead_id = l.id WHERE l.tenant_id = $1", true},
		{"SELECT name FROM dealix.leads WHERE $1::uuid = leads.tenant_id", true},
		{"DELETE FROM platform.idempotency_keys WHERE tenant_id = ANY($1)", true},
		{"INSERT INTO dealix.leads AS l (name, tenant_id) SELECT n, t FROM unnest($1::text[], $2::uuid[]) u(n, t)", true},
		// A join on tenant_id fixes no tenant: the statement spans them.
		{"SELECT name FROM dealix.leads l JOIN dealix.deals d ON d.tenant_id = l.tenant_id AND d.lead_id = l.id", false},
		{"DELETE FROM platform.durable_runs WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM platform.durable_runs WHERE finished_at < now() LIMIT $1)", false},
		{"SELECT (SELECT count(*) FROM dealix.leads WHERE tenant_id = $1)", true},
		// Read back, not filtered by.
		{"SELECT tenant_id, name FROM dealix.leads WHERE id = $1", false},
		{"UPDATE platform.dlq_jobs SET state = 'running' WHERE id = $1 RETURNING tenant_id, id", false},
		{"WITH j AS (UPDATE platform.dlq_jobs SET state = 'x' WHERE id = $1 RETURNING tenant_id) SELECT tenant_id FROM j", false},
		// Only in a literal or a comment.
		{"SELECT set_config('app.tenant_id', $1, true), name FROM dealix.leads WHERE id = $2", false},
		{"SELECT name FROM dealix.leads WHERE id = $1 -- tenant_id comes from RLS", false},
	} {
		if got := NamesTenant(Normalize(c.sql)); got != c.want {
			t.Errorf("NamesTenant(%q) = %v, want %v", c.sql, got, c.want)
		}
	}
}

func TestCheckFlagsUnlistedAndAllowsListed(t *testing.T) {
	stmts := []Statement{
		{SQL: Normalize("SELECT name FROM dealix.leads WHERE id = $1")},
		{SQL: Normalize(`SELECT name FROM "dealix"."deals" WHERE id = $1`)},
		{SQL: Normalize("SELECT name FROM dealix.leads WHERE tenant_id = $1")},
		{SQL: Normalize("SELECT name FROM dealix.plans WHERE code = $1")},
	}
	ex := []Exception{{Match: "FROM dealix.leads WHERE id = $1", Reason: "r", Citus: "c"}}
	findings, matched := Check(stmts, []string{"dealix.leads", "dealix.deals"}, ex)
	if len(findings) != 1 || !strings.Contains(findings[0].Statement.SQL, "deals") || findings[0].Tables[0] != "dealix.deals" {
		t.Fatalf("findings %+v", findings)
	}
	if len(matched[ex[0].Match]) != 1 {
		t.Fatalf("matched %+v", matched)
	}
}

// Every exception says why and what Citus needs, and picks out a
// statement of the library or the server rather than a fragment every
// statement has.
func TestExceptionsAreExplained(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Exceptions {
		if e.Reason == "" || e.Citus == "" || e.Who == "" || len(e.Match) < 30 || seen[e.Match] {
			t.Errorf("exception %+v: want Who, Reason, Citus and a distinct Match of 30 characters or more", e)
		}
		seen[e.Match] = true
	}
}
