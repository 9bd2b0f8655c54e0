package launchgates

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dealix/platform/gates"
)

// Areas of the launch gates, in the document's order.
const (
	AreaTechnical     = "Technical readiness"
	AreaSecurity      = "Security"
	AreaObservability = "Observability"
	AreaGTM           = "GTM / Funnel"
	AreaSupport       = "Support / Incident"
	AreaGovernance    = "Governance"
	AreaRollback      = "Rollback / Recovery"
)

// LaunchRule is the launch claim's rule: at least 24 gates closed, every
// P0 among them.
var LaunchRule = gates.Rule{MinClosed: 24, AllP0: true}

// RunbookScenarios are the headings docs/RUNBOOK.md must have, one per
// scenario.
var RunbookScenarios = []string{
	"Scenario 1: Deploy", "Scenario 2: Rollback", "Scenario 3: Database restore",
	"Scenario 4: Queue backlog", "Scenario 5: Provider outage", "Scenario 6: Secret rotation",
}

// SLOHeadings are the headings docs/SLO.md must have.
var SLOHeadings = []string{"Tier 1", "Tier 2", "Tier 3", "Alert policy"}

// LaunchSet is the launch-gates document as a set, checked against cfg's
// server, database and repository. Build a new set for each run: T8 and
// R2 share one restore drill per set.
func LaunchSet(cfg Config) *gates.Set {
	cfg = cfg.withDefaults()
	p := probe{cfg}
	root := func(parts ...string) string { return filepath.Join(append([]string{cfg.Root}, parts...)...) }
	drill := share(RestoreDrill{SourceURL: cfg.DatabaseURL, PGBin: cfg.PGBin})
	runbook := gates.FileCheck{Path: root("docs", "RUNBOOK.md"), Headings: RunbookScenarios,
		Contains: []string{"go build", "pg_dump", "pg_restore", "/admin/dlq", "DATABASE_URL"}}

	g := func(id, title, area string, pr gates.Priority, done string, c gates.Check) gates.Gate {
		return gates.Gate{ID: id, Title: title, Area: area, Priority: pr, Done: done, Check: c}
	}
	var ci gates.Check = blocked("CI's verdict lives with the CI service; give the CI command (launchgates -ci) to run it here")
	if len(cfg.CICommand) > 0 {
		ci = gates.CommandCheck{Args: cfg.CICommand, Dir: cfg.Root}
	}
	ciGate := g("T3", "CI green on main", AreaTechnical, gates.P0, "the CI entry point passes on the release commit", ci)
	if len(cfg.CICommand) > 0 {
		ciGate.Timeout = cfg.CITimeout
	}
	var costAlert gates.Check = gates.CheckFunc(func(context.Context) gates.Result {
		return open("no cost-alert probe configured: the alert is proven by posting to a receiver the server is configured with")
	})
	if cfg.CostAlert != nil {
		costAlert = cfg.CostAlert
	}
	set := &gates.Set{
		Name:    "Dealix launch gates",
		Verdict: "LAUNCH READY",
		Rule:    LaunchRule,
		Timeout: cfg.Timeout,
		Gates: []gates.Gate{
			g("T1", "/health/deep green", AreaTechnical, gates.P0, "PostgreSQL round trip, migrations current, pool: 200 status=ok", fn(p.deepHealth)),
			g("T2", "Release tagged", AreaTechnical, gates.P1, "the release commit carries a version tag", fn(releaseTag(cfg.Root, true))),
			ciGate,
			g("T4", "SSH hardened", AreaTechnical, gates.P1, "PasswordAuthentication no, root login by key only, MaxAuthTries 3",
				blocked("needs SSH access to the production host to read its sshd configuration")),
			g("T5", "DLQ + retry + idempotency wired", AreaTechnical, gates.P0,
				"/admin/dlq/stats shows the four queues; retries replay; a failing webhook lands dead and is re-driven",
				gates.CheckFunc(p.queues)),
			g("T6", "Load probe within budget", AreaTechnical, gates.P1,
				fmt.Sprintf("%d requests at %d/s, every answer 200, p95 < %s", cfg.LoadRequests, cfg.LoadRate, cfg.LoadP95), fn(p.load)),
			g("T7", "Rollback procedure tested end to end", AreaTechnical, gates.P1, "RUNBOOK scenario 2 executed on the host",
				documented(root("docs", "RUNBOOK.md"), "Scenario 2: Rollback", "the drill needs the deployed host and its previous release")),
			g("T8", "Backup restore tested", AreaTechnical, gates.P0, "pg_dump, restore into a fresh database, row counts per table equal", drill),

			g("S1", "Webhook signatures enforced", AreaSecurity, gates.P0, "Moyasar, HubSpot and Calendly deliveries without a valid signature: 401", fn(p.webhooksRefuseUnsigned)),
			g("S2", "API keys + rate limits", AreaSecurity, gates.P0, "a bad key is 401 (never 500); requests carry the rate limit", fn(p.apiKeys)),
			g("S3", "Firewall and fail2ban active", AreaSecurity, gates.P1, "22/80/443 only; sshd jail active",
				blocked("needs the production host's firewall and fail2ban status")),
			g("S4", "Secrets rotated after the release tag", AreaSecurity, gates.P1, "API keys, webhook secrets and the JWT key rotated",
				blocked("needs the production secret store and its rotation record")),
			g("S5", "Secrets in a vault, not .env", AreaSecurity, gates.P1, "production reads secrets from a secret manager",
				blocked("needs the production secret manager")),
			g("S6", "CORS allowlist", AreaSecurity, gates.P0, "a preflight from an origin not on the list gets no CORS headers", fn(p.cors)),
			g("S7", "External pen test", AreaSecurity, gates.P2, "report from an external tester",
				blocked("needs an external penetration tester")),

			g("O1", "Telemetry: correlation id bound to the trace", AreaObservability, gates.P0,
				"X-Correlation-ID echoed; without one, the trace id is the correlation id", fn(p.telemetry)),
			g("O2", "/admin/costs live", AreaObservability, gates.P1, "spend per model and day, cache hit ratio; admin only", fn(p.costs)),
			g("O3", "PostHog funnel live", AreaObservability, gates.P1, "seven funnel events arrive",
				blocked("needs a PostHog project API key")),
			g("O4", "Daily cost alert", AreaObservability, gates.P1, "one alert per tenant per day above the threshold", costAlert),
			g("O5", "SLO defined", AreaObservability, gates.P1, "docs/SLO.md with tiers, targets and the alert policy",
				gates.FileCheck{Path: root("docs", "SLO.md"), Headings: SLOHeadings, Contains: []string{"p95", "error budget"}}),

			g("G1", "Pricing endpoint public", AreaGTM, gates.P0, "/api/v1/pricing/plans without credentials: starter, growth, scale", fn(p.pricing)),
			g("G2", "Checkout with a real payment (1 SAR pilot)", AreaGTM, gates.P1, "a Moyasar invoice paid and its webhook verified",
				blocked("needs Moyasar test or live secret keys")),
			g("G3", "Calendly + HubSpot end to end with a real lead", AreaGTM, gates.P1, "a real booking and contact reach the server",
				blocked("needs HubSpot and Calendly account tokens and one real lead")),
			g("G4", "10 real leads captured", AreaGTM, gates.P1, "ten leads from real prospects",
				blocked("needs real prospects: a commercial outcome, not a check")),
			g("G5", "1 paid deal", AreaGTM, gates.P1, "one customer paid",
				blocked("needs a paying customer")),

			g("I1", "Runbook (6 scenarios)", AreaSupport, gates.P1, "docs/RUNBOOK.md: deploy, rollback, restore, backlog, outage, rotation, with commands", runbook),
			g("I2", "On-call / incident contact", AreaSupport, gates.P1, "a named person on call and the escalation tree",
				blocked("needs a named person on call")),
			g("I3", "Public status page", AreaSupport, gates.P2, "monitors and a public status page",
				blocked("needs an UptimeRobot (or other monitor) API key")),
			g("I4", "Customer support channel", AreaSupport, gates.P1, "a published, staffed support address",
				blocked("needs a support address staffed by a person")),

			g("GV1", "Approvals gate on outbound >50 / risk ≥0.7 / critical", AreaGovernance, gates.P0,
				"a held campaign waits; a second decision cannot flip the first; admin only", fn(p.approvals)),
			g("GV2", "Change discipline (no direct production edits)", AreaGovernance, gates.P1,
				"CI gates every change; the runbook forbids in-place edits", changeDiscipline(root)),

			g("R1", "Previous release preserved", AreaRollback, gates.P1, "a release tag to roll back to", fn(releaseTag(cfg.Root, false))),
			g("R2", "Database restore tested", AreaRollback, gates.P0, "covered by the T8 drill", drill),
			g("R3", "Previous version rollback < 5 min", AreaRollback, gates.P1, "covered by the T7 drill",
				documented(root("docs", "RUNBOOK.md"), "Scenario 2: Rollback", "the timed rollback needs the deployed host and its previous release")),
		},
	}
	return set
}

// documented is partial when the runbook has the scenario's heading (the
// procedure is written) and open when it does not: the drill itself needs
// a host this check cannot reach.
func documented(path, heading, reason string) gates.Check {
	return gates.CheckFunc(func(ctx context.Context) gates.Result {
		r := gates.FileCheck{Path: path, Headings: []string{heading}, Contains: []string{"git checkout"}}.Run(ctx)
		if r.Status != gates.Closed {
			return r
		}
		return partial(fmt.Sprintf("%s: %q documented with its commands", filepath.Base(path), heading), reason)
	})
}

// changeDiscipline is partial when CI runs on every change and the runbook
// forbids in-place edits: branch protection lives with the code host.
func changeDiscipline(root func(...string) string) gates.Check {
	return gates.CheckFunc(func(ctx context.Context) gates.Result {
		for _, c := range []gates.FileCheck{
			{Path: root(".ci", "run"), NonEmpty: true},
			{Path: root("docs", "RUNBOOK.md"), Contains: []string{"No in-place edits"}},
		} {
			if r := c.Run(ctx); r.Status != gates.Closed {
				return r
			}
		}
		return partial(".ci/run present; the runbook forbids in-place production edits",
			"branch protection on main is configured on the code host, which this check cannot read")
	})
}

// releaseTag reads the repository's tags: with atHead, one must point at
// HEAD (the release is tagged); otherwise any tag will do (a previous
// release to roll back to).
func releaseTag(dir string, atHead bool) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		args := []string{"-C", dir, "tag", "--list", "--sort=-creatordate"}
		if atHead {
			args = append(args, "--points-at", "HEAD")
		}
		out, err := exec.CommandContext(ctx, "git", args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git tag: %v: %s", err, tail(out))
		}
		tags := strings.Fields(string(out))
		if len(tags) == 0 {
			if atHead {
				return "", errors.New("HEAD carries no release tag")
			}
			return "", errors.New("the repository has no release tag to roll back to")
		}
		if atHead {
			return "HEAD is tagged " + strings.Join(tags, ", "), nil
		}
		return fmt.Sprintf("%d release tags, latest %s", len(tags), tags[0]), nil
	}
}
