package durable

import (
	"encoding/json"
	"time"
)

// mergeKind names the statements that the group commit may merge: the
// members of one kind and tenant in a batch go as one statement over
// arrays (one row per member) instead of one statement each, so the
// server parses, plans and executes one statement for all of them. The
// merged statement returns a row for each member it wrote; a member
// without one was refused by its fence (or, for a start, its run existed
// already), exactly as its own statement would have affected no row.
// When PostgreSQL refuses the merged statement, the batch falls back to
// sending every member alone (see flush), so one member's refused value
// still fails only its own run.
type mergeKind int

const (
	mergeStep   mergeKind = iota // a checkpoint of a run that stays running
	mergeFinish                  // a run's end
	mergeStart                   // a run started claimed by this runtime
	mergeKinds
)

// mergeable is one member's share of a merged statement.
type mergeable struct {
	kind mergeKind
	run  string
	// at receives the time the merged statement returns for the member
	// (finished_at, created_at), as the member's own statement's scan
	// would.
	at *time.Time

	attempt  int64
	step     *StepRecord     // mergeStep
	status   Status          // mergeFinish
	output   json.RawMessage // mergeFinish
	errText  string          // mergeFinish
	workflow string          // mergeStart
	input    json.RawMessage // mergeStart
}

// mergedStepSQL is recordRunningSQL for several runs of one tenant.
const mergedStepSQL = `
WITH m AS (
    SELECT * FROM unnest($2::text[], $3::bigint[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::integer[])
        AS m(run_id, attempt, seq, kind, name, status, output, error, attempts)
), fence AS (
    UPDATE platform.durable_runs r
    SET lease_until = CASE WHEN r.lease_until < now() + $11::bigint * interval '1 microsecond'
                           THEN now() + $12::bigint * interval '1 microsecond' ELSE r.lease_until END,
        ready_at = CASE WHEN r.lease_until < now() + $11::bigint * interval '1 microsecond'
                        THEN now() + $12::bigint * interval '1 microsecond' ELSE r.ready_at END,
        wake_at = NULL, wait_signal = NULL, wait_seq = NULL, updated_at = now()
    FROM m
    WHERE r.tenant_id = $1::uuid AND r.id = m.run_id AND r.attempt = m.attempt AND r.status = 'running'
    RETURNING r.id
)
INSERT INTO platform.durable_steps (tenant_id, run_id, seq, kind, name, status, output, error, attempts, created_at)
SELECT $1::uuid, m.run_id, m.seq, m.kind, m.name, m.status, m.output::jsonb, NULLIF(m.error, ''), m.attempts, now()
FROM m JOIN fence ON fence.id = m.run_id
RETURNING run_id, created_at`

// mergedFinishSQL is finishSQL for several runs of one tenant.
const mergedFinishSQL = `
UPDATE platform.durable_runs r
SET status = m.status, output = m.output::jsonb, error = NULLIF(m.error, ''), finished_at = now(), updated_at = now(),
    owner = NULL, lease_until = NULL, ready_at = NULL, wake_at = NULL, wait_signal = NULL, wait_seq = NULL
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS m(run_id, attempt, status, output, error)
WHERE r.tenant_id = $1::uuid AND r.id = m.run_id AND r.attempt = m.attempt AND r.status = 'running'
RETURNING r.id, r.finished_at`

// mergedStartSQL is startClaimedSQL for several runs of one tenant.
const mergedStartSQL = `
INSERT INTO platform.durable_runs (tenant_id, id, workflow, status, input, owner, attempt, lease_until, ready_at, created_at, updated_at)
SELECT $1::uuid, m.id, m.workflow, 'running', m.input::jsonb, $5, 1, now() + $6::bigint * interval '1 microsecond',
       now() + $6::bigint * interval '1 microsecond', now(), now()
FROM unnest($2::text[], $3::text[], $4::text[]) AS m(id, workflow, input)
ON CONFLICT (tenant_id, id) DO NOTHING
RETURNING id, created_at`

// jsonText is a JSON value as a text array element (NULL when absent).
func jsonText(v json.RawMessage) *string {
	if v == nil {
		return nil
	}
	s := string(v)
	return &s
}

// mergedStatement builds the merged statement of members (at least two,
// of kind, one tenant, distinct runs).
func (rt *Runtime) mergedStatement(kind mergeKind, members []*commitRequest) (string, []any) {
	n := len(members)
	tenant := members[0].tenant
	runs := make([]string, n)
	attempts := make([]int64, n)
	for i, req := range members {
		runs[i], attempts[i] = req.merge.run, req.merge.attempt
	}
	switch kind {
	case mergeStep:
		seqs, tries := make([]int32, n), make([]int32, n)
		kinds, names, statuses, errors := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		outputs := make([]*string, n)
		for i, req := range members {
			rec := req.merge.step
			seqs[i], kinds[i], names[i], statuses[i] = int32(rec.Seq), rec.Kind, rec.Name, rec.Status
			outputs[i], errors[i], tries[i] = jsonText(rec.Output), rec.Error, int32(rec.Attempts)
		}
		return mergedStepSQL, []any{tenant, runs, attempts, seqs, kinds, names, statuses, outputs, errors, tries,
			micros(rt.cfg.Lease - rt.cfg.Heartbeat), micros(rt.cfg.Lease)}
	case mergeFinish:
		statuses, errors := make([]string, n), make([]string, n)
		outputs := make([]*string, n)
		for i, req := range members {
			statuses[i], outputs[i], errors[i] = string(req.merge.status), jsonText(req.merge.output), req.merge.errText
		}
		return mergedFinishSQL, []any{tenant, runs, attempts, statuses, outputs, errors}
	default: // mergeStart
		workflows := make([]string, n)
		inputs := make([]*string, n)
		for i, req := range members {
			workflows[i], inputs[i] = req.merge.workflow, jsonText(req.merge.input)
		}
		return mergedStartSQL, []any{tenant, runs, workflows, inputs, rt.cfg.WorkerID, micros(rt.cfg.Lease)}
	}
}
