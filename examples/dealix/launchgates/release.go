package launchgates

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/gates"
	"github.com/dealix/platform/tenancy/rlspolicy"
)

// TableAuditQuery lists the tenant tables (a tenant_id column, outside the
// system schemas) whose row-level security is off, not forced, without a
// policy, or with a permissive write policy lacking WITH CHECK: the part
// of the RLS audit that holds for any connected role. No row is a clean
// database. gates/sets/release.json runs the same query.
const TableAuditQuery = `SELECT n.nspname || '.' || c.relname AS tenant_table,
       CASE WHEN NOT c.relrowsecurity THEN 'rls_disabled'
            WHEN NOT c.relforcerowsecurity THEN 'rls_not_forced'
            WHEN NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) THEN 'no_policy'
            ELSE 'policy_without_check' END AS finding
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity
        OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
        OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive
                   AND p.polcmd IN ('*', 'a', 'w') AND p.polwithcheck IS NULL))
 ORDER BY 1`

// ReleaseSet is the release readiness matrix: every gate must close.
func ReleaseSet(cfg Config) *gates.Set {
	cfg = cfg.withDefaults()
	p := probe{cfg}
	g := func(id, title, area string, c gates.Check) gates.Gate {
		return gates.Gate{ID: id, Title: title, Area: area, Priority: gates.P0, Check: c}
	}
	set := &gates.Set{
		Name:    "Dealix release readiness",
		Verdict: "RELEASE READY",
		Timeout: cfg.Timeout,
		Gates: []gates.Gate{
			g("RR1", "Health answers", "Health", fn(p.health)),
			g("RR2", "Deep health green", "Health", fn(p.deepHealth)),
			g("RR3", "Pricing public: three plans without credentials", "API", fn(p.pricing)),
			g("RR4", "DLQ stats for all four queues (admin only)", "Queues", fn(p.dlqStats)),
			g("RR5", "Approvals endpoints: 403 without admin, 200 with", "Governance", fn(p.approvalsAnswer)),
		},
	}
	for i, route := range WebhookRoutes {
		set.Gates = append(set.Gates, g(fmt.Sprintf("RR%d", 6+i), "Webhook "+route+" refuses unsigned deliveries (401)", "Webhooks",
			fn(func(ctx context.Context) (string, error) { return p.webhookRefuses(ctx, route) })))
	}
	set.Gates = append(set.Gates,
		g("RR9", "Correlation id echoed (X-Correlation-ID)", "Telemetry", fn(p.correlationEcho)),
		g("RR10", "Correlation id bound to the trace", "Telemetry", fn(p.correlationTrace)),
		g("RR11", "RLS audit clean", "Database", fn(cfg.rlsAudit)),
		g("RR12", "Evidence written on a deal close", "Deals", fn(p.dealEvidence)),
	)
	return set
}

// webhookRefuses: one route answers an unsigned delivery 401.
func (p probe) webhookRefuses(ctx context.Context, route string) (string, error) {
	a, err := p.do(ctx, http.MethodPost, webhookPath(route), "", `{"id":"gate-probe-`+randomHex(4)+`","type":"probe"}`)
	if err != nil {
		return "", err
	}
	if a.status != http.StatusUnauthorized {
		return "", fmt.Errorf("POST %s unsigned: %s, want 401", route, a)
	}
	return "POST " + route + " unsigned: 401", nil
}

// rlsAudit runs rlspolicy.Audit as the serving role when its URL is
// given, and the table audit through DatabaseURL otherwise.
func (c Config) rlsAudit(ctx context.Context) (string, error) {
	if c.AppDatabaseURL != "" {
		conn, err := pgx.Connect(ctx, c.AppDatabaseURL)
		if err != nil {
			return "", fmt.Errorf("connect as the serving role: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		findings, err := rlspolicy.Audit(ctx, conn)
		if err != nil {
			return "", fmt.Errorf("audit: %w", err)
		}
		if len(findings) > 0 {
			var parts []string
			for _, f := range findings[:min(len(findings), 5)] {
				parts = append(parts, f.String())
			}
			return "", fmt.Errorf("%d findings: %s", len(findings), strings.Join(parts, "; "))
		}
		var tables int
		if err := conn.QueryRow(ctx, `SELECT count(DISTINCT attrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE a.attname = 'tenant_id' AND c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')`).Scan(&tables); err != nil {
			return "", err
		}
		return fmt.Sprintf("rlspolicy.Audit as the serving role: no findings over %d tenant tables", tables), nil
	}
	if c.DatabaseURL == "" {
		return "", errors.New("no database URL configured")
	}
	r := gates.SQLCheck{URL: c.DatabaseURL, Query: TableAuditQuery, WantRows: new(int)}.Run(ctx)
	if r.Status != gates.Closed {
		return "", errors.New(r.Reason)
	}
	return "table audit: every tenant table has RLS enabled, forced and policed (" + r.Evidence + ")", nil
}
