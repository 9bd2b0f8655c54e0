package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dealix/platform/internal/rls"
)

// Step kinds, recorded with each checkpoint and compared on replay.
const (
	kindStep   = "step"
	kindTx     = "tx"
	kindSleep  = "sleep"
	kindSignal = "signal"
)

// RetryPolicy says how often a failing step is tried and how long to wait
// between tries: the n-th wait is InitialBackoff·Multiplier^(n-1), at most
// MaxBackoff, shortened by a random fraction of up to Jitter. A step
// function returning an error wrapped with Permanent is not retried.
type RetryPolicy struct {
	// MaxAttempts is the number of tries in all. Default 1 (no retry).
	MaxAttempts int
	// InitialBackoff is the wait before the second try. Default 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps each wait. Default 30s.
	MaxBackoff time.Duration
	// Multiplier grows the wait from one try to the next. Default 2.
	Multiplier float64
	// Jitter is the largest fraction (0..1) taken off each wait at
	// random, so that many runs failing together do not retry together.
	// Default 0.2; negative means none.
	Jitter float64
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 1
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.Multiplier < 1 {
		p.Multiplier = 2
	}
	switch {
	case p.Jitter == 0:
		p.Jitter = 0.2
	case p.Jitter < 0:
		p.Jitter = 0
	case p.Jitter > 1:
		p.Jitter = 1
	}
	return p
}

// Backoff returns the wait after the given failed attempt (from 1), with
// the policy's defaults applied and r (in [0,1)) choosing the jitter.
func (p RetryPolicy) Backoff(attempt int, r float64) time.Duration {
	p = p.withDefaults()
	d := float64(p.InitialBackoff) * math.Pow(p.Multiplier, float64(max(attempt-1, 0)))
	d = min(d, float64(p.MaxBackoff))
	return time.Duration(d * (1 - p.Jitter*r))
}

// StepOption configures one step.
type StepOption func(*stepOptions)

type stepOptions struct {
	retry RetryPolicy
}

// WithRetry sets the step's retry policy.
func WithRetry(p RetryPolicy) StepOption {
	return func(o *stepOptions) { o.retry = p }
}

func stepConfig(opts []StepOption) stepOptions {
	var o stepOptions
	for _, opt := range opts {
		opt(&o)
	}
	o.retry = o.retry.withDefaults()
	return o
}

// Step runs fn once for the run and records its result (as JSON) under
// the step's sequence number before returning it. When the run resumes
// after a crash, a recorded step returns its recorded result without
// running fn again; so fn runs at least once, and exactly once unless the
// process dies between fn's return and the checkpoint's commit (use
// TxStep for database effects that must happen exactly once).
//
// A failing fn is retried by the step's RetryPolicy; its final failure is
// recorded too and returned as a *StepError, on replay as well. Step must
// be called from the workflow function's goroutine, with the ctx it was
// given (or one derived from it).
func Step[T any](ctx context.Context, name string, fn func(context.Context) (T, error), opts ...StepOption) (T, error) {
	var zero T
	rs, seq, rec, span, err := beginStep(ctx, kindStep, name)
	if err != nil {
		return zero, err
	}
	defer span.End()
	if rec != nil {
		return replay[T](rs, rec)
	}
	cfg := stepConfig(opts)
	started := rs.rt.cfg.Clock()
	var out T
	attempts, err := retry(ctx, rs, cfg.retry, func(ctx context.Context) error {
		var err error
		out, err = fn(withoutState(ctx))
		return err
	})
	if err != nil {
		recordStep(ctx, rs, kindStep, started, err)
		return zero, rs.stepFailed(ctx, span, seq, kindStep, name, attempts, err)
	}
	encoded, err := encodeResult(rs, name, out)
	if err != nil {
		return zero, err
	}
	rec = &StepRecord{Seq: seq, Kind: kindStep, Name: name, Status: "completed", Output: encoded, Attempts: attempts}
	err = rs.checkpoint(ctx, rec, nil)
	recordStep(ctx, rs, kindStep, started, err)
	if err != nil {
		return zero, err
	}
	return out, nil
}

// TxStep runs fn in a transaction on the App pool scoped to the run's
// tenant and records the step's checkpoint in that same transaction: fn's
// database effects and the checkpoint commit together or not at all, so
// they happen exactly once. On replay the recorded result is returned and
// fn does not run. A failing fn is rolled back and retried by the step's
// RetryPolicy, each try in a new transaction. fn must not commit or roll
// back tx.
func TxStep[T any](ctx context.Context, name string, fn func(context.Context, pgx.Tx) (T, error), opts ...StepOption) (T, error) {
	var zero T
	rs, seq, rec, span, err := beginStep(ctx, kindTx, name)
	if err != nil {
		return zero, err
	}
	defer span.End()
	if rec != nil {
		return replay[T](rs, rec)
	}
	cfg := stepConfig(opts)
	started := rs.rt.cfg.Clock()
	var out T
	var attempt int
	attempts, err := retry(ctx, rs, cfg.retry, func(ctx context.Context) error {
		attempt++
		var err error
		out, err = txAttempt(ctx, rs, seq, name, attempt, fn)
		return err
	})
	recordStep(ctx, rs, kindTx, started, err)
	if err != nil {
		return zero, rs.stepFailed(ctx, span, seq, kindTx, name, attempts, err)
	}
	return out, nil
}

// txAttempt is one try of a TxStep. Errors that must not be retried (a
// result that cannot be encoded, a lost lease, a failed commit) halt or
// fail the run, which ends the retries.
func txAttempt[T any](ctx context.Context, rs *runState, seq int, name string, attempt int, fn func(context.Context, pgx.Tx) (T, error)) (T, error) {
	var zero T
	tx, err := rs.rt.cfg.App.Begin(ctx)
	if err != nil {
		return zero, rs.halt(fmt.Errorf("durable: begin step transaction: %w", err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := rls.SetTenant(ctx, tx, rs.tenant); err != nil {
		return zero, rs.halt(err)
	}
	out, err := fn(withoutState(ctx), tx)
	if err != nil {
		return zero, err
	}
	encoded, err := encodeResult(rs, name, out)
	if err != nil {
		return zero, err
	}
	rec := &StepRecord{Seq: seq, Kind: kindTx, Name: name, Status: "completed", Output: encoded, Attempts: attempt}
	if err := rs.checkpointTx(ctx, tx, rec, nil); err != nil {
		return zero, err
	}
	if err := tx.Commit(ctx); err != nil {
		// The outcome is unknown: stop here; the run resumes from
		// whatever was committed once the lease expires.
		return zero, rs.halt(fmt.Errorf("durable: commit step %q: %w", name, err))
	}
	return out, nil
}

// beginStep takes the next sequence number and opens the step's span.
func beginStep(ctx context.Context, kind, name string) (*runState, int, *StepRecord, trace.Span, error) {
	rs, err := stateFrom(ctx)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if err := checkName(kind, name); err != nil {
		return nil, 0, nil, nil, rs.failRun(err)
	}
	if ctx.Err() != nil { // shut down or lease lost: no new step
		return nil, 0, nil, nil, rs.halt(context.Cause(ctx))
	}
	if rs.softStopped() { // stopping softly: park the run here
		return nil, 0, nil, nil, rs.halt(ErrStopped)
	}
	seq, rec, err := rs.next(kind, name)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	_, span := rs.rt.cfg.tracer().Start(ctx, "durable.step "+name)
	if span.IsRecording() { // not built for the spans nobody records
		span.SetAttributes(
			attribute.String("durable.step.kind", kind),
			attribute.Int("durable.step.seq", seq),
			attribute.Bool("durable.step.replayed", rec != nil),
		)
	}
	return rs, seq, rec, span, nil
}

// replay returns a recorded step's outcome.
func replay[T any](rs *runState, rec *StepRecord) (T, error) {
	var out T
	if rec.Status == "failed" {
		return out, &StepError{Seq: rec.Seq, Name: rec.Name, Attempts: rec.Attempts, Err: errors.New(rec.Error)}
	}
	if err := json.Unmarshal(rec.Output, &out); err != nil {
		return out, rs.failRun(fmt.Errorf("%w: recorded result of step %d %q: %v", ErrDecode, rec.Seq, rec.Name, err))
	}
	return out, nil
}

func encodeResult(rs *runState, name string, v any) (json.RawMessage, error) {
	encoded, err := encodeJSON(v)
	if err != nil {
		return nil, rs.failRun(fmt.Errorf("%w: result of step %q: %v", ErrEncode, name, err))
	}
	return encoded, nil
}

// retry calls try until it succeeds, fails permanently, the run stops or
// the policy's attempts are used up; it returns the number of tries.
func retry(ctx context.Context, rs *runState, p RetryPolicy, try func(context.Context) error) (int, error) {
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			return attempt, nil
		}
		var permanent *permanentError
		if stop, fatal := rs.outcome(); stop != nil || fatal != nil || ctx.Err() != nil ||
			errors.As(err, &permanent) || attempt >= p.MaxAttempts {
			return attempt, err
		}
		timer := time.NewTimer(p.Backoff(attempt, rand.Float64()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return attempt, err
		case <-rs.soft:
			// Stopping softly: the step is tried again wherever the run
			// resumes, not after a backoff here.
			timer.Stop()
			rs.halt(ErrStopped)
			return attempt, err
		case <-timer.C:
		}
	}
}

// stepFailed records a step's final failure, unless the run stopped or
// failed for another reason, and returns the error for the workflow.
func (rs *runState) stepFailed(ctx context.Context, span trace.Span, seq int, kind, name string, attempts int, err error) error {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	if stop, fatal := rs.outcome(); stop != nil || fatal != nil {
		return err
	}
	if ctx.Err() != nil {
		return rs.halt(context.Cause(ctx))
	}
	var permanent *permanentError
	if errors.As(err, &permanent) {
		err = permanent.err
	}
	rec := &StepRecord{Seq: seq, Kind: kind, Name: name, Status: "failed", Error: cleanError(err.Error()), Attempts: attempts}
	if cpErr := rs.checkpoint(ctx, rec, nil); cpErr != nil {
		return cpErr
	}
	return &StepError{Seq: seq, Name: name, Attempts: attempts, Err: err}
}

// parking moves a run out of running when a checkpoint commits. Its due
// time (when it becomes claimable again) is dueAt, or dueIn from the
// database's clock, or never (nil, nil: only a signal wakes it).
type parking struct {
	status     Status
	dueAt      *time.Time
	dueIn      *time.Duration
	waitSignal *string
	waitSeq    *int
}

// fenceSQL renews the lease of a running run or parks it, fenced on the
// execution's claim. Lease and due times come from the database's clock.
const fenceSQL = `
UPDATE platform.durable_runs
SET status = $4::text, owner = CASE WHEN $4::text = 'running' THEN owner END,
    lease_until = CASE WHEN $4::text = 'running' THEN coalesce($5::timestamptz, now() + $6::bigint * interval '1 microsecond') END,
    ready_at = coalesce($5::timestamptz, now() + $6::bigint * interval '1 microsecond'),
    wake_at = CASE WHEN $4::text <> 'running' THEN coalesce($5::timestamptz, now() + $6::bigint * interval '1 microsecond') END,
    wait_signal = $7, wait_seq = $8, updated_at = now()
WHERE tenant_id = $1::uuid AND id = $2 AND attempt = $3 AND status = 'running'`

// renewSQL is fenceSQL for a run that stays running, with the same
// parameters ($5 being the renewal threshold instead of a due time). It
// renews the lease only once the lease is older than a heartbeat (less
// than $5 of it left), so that most checkpoints change no indexed column
// and PostgreSQL updates the row in place (a HOT update: no index entry
// written, no index to clean up later).
const renewSQL = `
UPDATE platform.durable_runs
SET lease_until = CASE WHEN lease_until < now() + $5::bigint * interval '1 microsecond'
                       THEN now() + $6::bigint * interval '1 microsecond' ELSE lease_until END,
    ready_at = CASE WHEN lease_until < now() + $5::bigint * interval '1 microsecond'
                    THEN now() + $6::bigint * interval '1 microsecond' ELSE ready_at END,
    wake_at = NULL, wait_signal = $7::text, wait_seq = $8::integer, updated_at = now()
WHERE tenant_id = $1::uuid AND id = $2 AND attempt = $3 AND status = $4::text`

// recordSQL records a checkpoint with the fence. A sleep's output, its
// wake-up time, is computed from the database's clock ($16, the sleep's
// length) in the same statement that parks the run until then.
const recordSQL = `
WITH fence AS (` + fenceSQL + ` RETURNING 1)
` + insertStepSQL

// recordRunningSQL is recordSQL for a run that stays running.
const recordRunningSQL = `
WITH fence AS (` + renewSQL + ` RETURNING 1)
` + insertStepSQL

const insertStepSQL = `INSERT INTO platform.durable_steps (tenant_id, run_id, seq, kind, name, status, output, error, attempts, created_at)
SELECT $1::uuid, $2, $9, $10, $11, $12,
       coalesce($13::jsonb, to_jsonb(now() + $16::bigint * interval '1 microsecond')), NULLIF($14, ''), $15, now()
FROM fence`

// fenceArgs are the arguments of fenceSQL: the run stays running with a
// renewed lease, or is parked.
func (rs *runState) fenceArgs(park *parking) []any {
	if park == nil { // renewSQL's
		return []any{rs.tenant, rs.id, rs.attempt, string(StatusRunning),
			micros(rs.rt.cfg.Lease - rs.rt.cfg.Heartbeat), micros(rs.rt.cfg.Lease), nil, nil}
	}
	var dueIn *int64
	if park.dueIn != nil {
		m := micros(*park.dueIn)
		dueIn = &m
	}
	return []any{rs.tenant, rs.id, rs.attempt, string(park.status), park.dueAt, dueIn, park.waitSignal, park.waitSeq}
}

// recordArgs are the arguments of recordSQL. A sleep record without an
// output gets its wake-up time: now plus the parking's dueIn (zero when
// the run does not park).
func recordArgs(fence []any, rec *StepRecord, park *parking) []any {
	var sleep *int64
	if rec.Kind == kindSleep && rec.Output == nil {
		var m int64
		if park != nil && park.dueIn != nil {
			m = micros(*park.dueIn)
		}
		sleep = &m
	}
	return append(fence, rec.Seq, rec.Kind, rec.Name, rec.Status, rec.Output, rec.Error, rec.Attempts, sleep)
}

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// checkpointTx records rec (when not nil) and renews or parks the run in
// tx, fenced on this execution's claim.
func (rs *runState) checkpointTx(ctx context.Context, tx execer, rec *StepRecord, park *parking) error {
	sql, args := rs.checkpointStatement(rec, park)
	tag, err := tx.Exec(ctx, sql, args...)
	return rs.checkpointResult(tag.RowsAffected(), err)
}

// checkpoint is checkpointTx in a transaction of its own, committed
// together with the checkpoints of the other runs executing at the moment.
func (rs *runState) checkpoint(ctx context.Context, rec *StepRecord, park *parking) error {
	n, err := rs.rt.commits.do(ctx, rs.rt, rs.checkpointRequest(rec, park))
	return rs.checkpointResult(n, err)
}

// checkpointRequest is checkpoint's statement for the group commit.
func (rs *runState) checkpointRequest(rec *StepRecord, park *parking) *commitRequest {
	sql, args := rs.checkpointStatement(rec, park)
	req := &commitRequest{tenant: rs.tenant, sql: sql, args: args}
	if rec != nil && park == nil && (rec.Kind != kindSleep || rec.Output != nil) {
		// The common checkpoint, a step's record while the run goes on,
		// merges with the others of its tenant in the batch. (A sleep's
		// record without its time takes it from the database's clock in
		// its own statement.)
		req.merge = &mergeable{kind: mergeStep, run: rs.id, attempt: rs.attempt, step: rec}
	}
	return req
}

func (rs *runState) checkpointStatement(rec *StepRecord, park *parking) (string, []any) {
	switch {
	case rec == nil && park == nil:
		return renewSQL, rs.fenceArgs(park)
	case rec == nil:
		return fenceSQL, rs.fenceArgs(park)
	case park == nil:
		return recordRunningSQL, recordArgs(rs.fenceArgs(park), rec, park)
	}
	return recordSQL, recordArgs(rs.fenceArgs(park), rec, park)
}

func (rs *runState) checkpointResult(rows int64, err error) error {
	if pgErr, refused := refusedValue(err); refused {
		// Sending it again cannot succeed: the run fails with the reason
		// instead of being resumed and refused forever.
		return rs.failRun(fmt.Errorf("%w: checkpoint refused by PostgreSQL: %s", ErrEncode, pgErr.Message))
	}
	switch {
	case err != nil:
		return rs.halt(fmt.Errorf("durable: checkpoint: %w", err))
	case rows == 0:
		return rs.halt(ErrLeaseLost)
	}
	return nil
}
