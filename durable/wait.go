package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// Sleep pauses the run for d, durably: the wake-up time (d from now on
// the database's clock) is recorded as the run's next checkpoint and the
// run is parked (status sleeping) without holding a worker, so the sleep
// outlives restarts. While parking, Sleep returns ErrSuspended: return it
// from the workflow function. When the run resumes at its wake-up time,
// the replayed Sleep returns nil.
func Sleep(ctx context.Context, d time.Duration) error {
	rs, seq, rec, span, err := beginStep(ctx, kindSleep, "sleep")
	if err != nil {
		return err
	}
	defer span.End()
	if rec != nil {
		var wake time.Time
		if err := json.Unmarshal(rec.Output, &wake); err != nil {
			return rs.failRun(fmt.Errorf("%w: recorded wake-up time at step %d: %v", ErrDecode, seq, err))
		}
		if !rs.claimedAt.Before(wake) {
			return nil
		}
		// Claimed before its time (an operator's Resume): park again
		// until then.
		return rs.park(ctx, nil, &parking{status: StatusSleeping, dueAt: &wake})
	}
	// The wake-up time is the record's output, computed by the statement.
	rec = &StepRecord{Seq: seq, Kind: kindSleep, Name: "sleep", Status: "completed", Attempts: 1}
	if d <= 0 {
		return rs.checkpoint(ctx, rec, nil)
	}
	return rs.park(ctx, rec, &parking{status: StatusSleeping, dueIn: &d})
}

// park records rec (when not nil) and parks the run in one transaction,
// then stops this execution.
func (rs *runState) park(ctx context.Context, rec *StepRecord, p *parking) error {
	if err := rs.checkpoint(ctx, rec, p); err != nil {
		return err
	}
	return rs.halt(ErrSuspended)
}

// NoTimeout makes WaitSignal wait without a deadline.
const NoTimeout time.Duration = 0

// WaitSignal waits for the signal name sent to this run (Signal,
// SignalTx) and returns its payload decoded into T. Signals sent before
// the wait began count: each wait consumes the oldest unconsumed signal of
// its name. Without a signal yet, the run is parked (status waiting,
// holding no worker) and WaitSignal returns ErrSuspended: return it from
// the workflow function; the run resumes when the signal arrives. After
// timeout (counted from the first time the run reached this wait; NoTimeout
// for none) it returns ErrSignalTimeout instead. The outcome is recorded as
// a checkpoint, so a replay returns the same payload or timeout.
func WaitSignal[T any](ctx context.Context, name string, timeout time.Duration) (T, error) {
	var zero T
	if err := checkName("signal", name); err != nil {
		return zero, err
	}
	rs, seq, rec, span, err := beginStep(ctx, kindSignal, name)
	if err != nil {
		return zero, err
	}
	defer span.End()
	if rec == nil {
		rec, err = rs.receive(ctx, seq, name, timeout)
		if err != nil {
			return zero, err
		}
	}
	if rec.Status == "timeout" {
		return zero, fmt.Errorf("%w: %q after %v", ErrSignalTimeout, name, timeout)
	}
	var out T
	if err := json.Unmarshal(rec.Output, &out); err != nil {
		return zero, rs.failRun(fmt.Errorf("%w: payload of signal %q: %v", ErrDecode, name, err))
	}
	return out, nil
}

const lockRunSQL = `
SELECT now() FROM platform.durable_runs
WHERE tenant_id = $1 AND id = $2 AND attempt = $3 AND status = 'running' FOR UPDATE`

const consumeSignalSQL = `
UPDATE platform.durable_signals SET consumed_seq = $3
WHERE tenant_id = $1 AND id = (
    SELECT id FROM platform.durable_signals
    WHERE tenant_id = $1 AND run_id = $2 AND name = $4 AND consumed_seq IS NULL
    ORDER BY id LIMIT 1)
RETURNING payload`

// receive consumes a pending signal and records it, records a timeout, or
// parks the run — all under the run row's lock, which SignalTx takes too,
// so a signal cannot slip between the look and the parking.
func (rs *runState) receive(ctx context.Context, seq int, name string, timeout time.Duration) (*StepRecord, error) {
	var rec *StepRecord
	parked := false
	err := rls.InTx(ctx, rs.rt.cfg.App, rs.tenant, func(tx pgx.Tx) error {
		var now time.Time // the database's clock decides the deadline
		if err := tx.QueryRow(ctx, lockRunSQL, rs.tenant, rs.id, rs.attempt).Scan(&now); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrLeaseLost
			}
			return err
		}
		var payload json.RawMessage
		err := tx.QueryRow(ctx, consumeSignalSQL, rs.tenant, rs.id, seq, name).Scan(&payload)
		switch {
		case err == nil:
			rec = &StepRecord{Seq: seq, Kind: kindSignal, Name: name, Status: "completed", Output: payload, Attempts: 1}
			return rs.checkpointTx(ctx, tx, rec, nil)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		deadline := rs.deadline(seq, timeout, now)
		if deadline != nil && !now.Before(*deadline) {
			rec = &StepRecord{Seq: seq, Kind: kindSignal, Name: name, Status: "timeout", Attempts: 1}
			return rs.checkpointTx(ctx, tx, rec, nil)
		}
		parked = true
		return rs.checkpointTx(ctx, tx, nil, &parking{status: StatusWaiting, dueAt: deadline, waitSignal: &name, waitSeq: &seq})
	})
	switch {
	case errors.Is(err, ErrLeaseLost):
		return nil, rs.halt(ErrLeaseLost)
	case err != nil:
		return nil, rs.halt(fmt.Errorf("durable: wait for signal %q: %w", name, err))
	case parked:
		return nil, rs.halt(ErrSuspended)
	}
	return rec, nil
}

// deadline is the wait's deadline: the one stored when the run first
// parked in this wait, or timeout from now (the database's clock); nil
// without timeout.
func (rs *runState) deadline(seq int, timeout time.Duration, now time.Time) *time.Time {
	if rs.waitSeq == seq && !rs.waitDeadline.IsZero() {
		d := rs.waitDeadline
		return &d
	}
	if timeout <= 0 {
		return nil
	}
	d := now.Add(timeout)
	return &d
}

// Signal sends the signal name with payload (encoded as JSON) to the run
// runID of the tenant ctx carries; see SignalTx.
func (rt *Runtime) Signal(ctx context.Context, runID, name string, payload any) error {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	return rt.SignalForTenant(ctx, tenant, runID, name, payload)
}

// SignalForTenant is Signal for tenant's run, for system work across
// tenants.
func (rt *Runtime) SignalForTenant(ctx context.Context, tenant, runID, name string, payload any) error {
	tenant, err := rls.ParseTenant(tenant)
	if err != nil {
		return err
	}
	encoded, err := encodeSignal(name, payload)
	if err != nil {
		return err
	}
	err = rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		return rt.signalIn(ctx, tx, tenant, runID, name, encoded)
	})
	if err == nil {
		rt.wake()
	}
	return err
}

const wakeWaiterSQL = `
UPDATE platform.durable_runs
SET ready_at = CASE WHEN status = 'waiting' AND wait_signal = $3 THEN now() ELSE ready_at END
WHERE tenant_id = $1 AND id = $2
RETURNING status`

const insertSignalSQL = `
INSERT INTO platform.durable_signals (tenant_id, run_id, name, payload, created_at)
VALUES ($1, $2, $3, $4, now())`

// SignalTx sends the signal name with payload to run runID in the caller's
// transaction: the signal exists once tx commits, atomically with the
// caller's own writes. A run waiting for name becomes claimable at once; a
// signal sent before the run waits is kept for its wait. tx must already
// be scoped to a tenant; it is never re-scoped, and a context naming
// another tenant is refused with a *tenancy.TenantMismatchError. It
// returns ErrRunNotFound for an unknown run, ErrRunFinished for a final
// one (storing nothing), ErrNoTenant when tx has no tenant and an
// ErrEncode error for a payload that cannot be stored as JSON.
func (rt *Runtime) SignalTx(ctx context.Context, tx pgx.Tx, runID, name string, payload any) error {
	tenant, err := rls.CheckTx(ctx, tx)
	if err != nil {
		return err
	}
	encoded, err := encodeSignal(name, payload)
	if err != nil {
		return err
	}
	return rt.signalIn(ctx, tx, tenant, runID, name, encoded)
}

func encodeSignal(name string, payload any) ([]byte, error) {
	if err := checkName("signal", name); err != nil {
		return nil, err
	}
	encoded, err := encodeJSON(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload of signal %q: %v", ErrEncode, name, err)
	}
	return encoded, nil
}

// signalIn stores the signal in tx, scoped to tenant.
func (rt *Runtime) signalIn(ctx context.Context, tx pgx.Tx, tenant, runID, name string, encoded []byte) error {
	var status Status
	err := tx.QueryRow(ctx, wakeWaiterSQL, tenant, runID, name).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %q", ErrRunNotFound, runID)
	}
	if err != nil {
		return fmt.Errorf("durable: signal run: %w", err)
	}
	if status.Finished() {
		return fmt.Errorf("%w: run %q is %s", ErrRunFinished, runID, status)
	}
	if _, err := tx.Exec(ctx, insertSignalSQL, tenant, runID, name, encoded); err != nil {
		return fmt.Errorf("durable: store signal: %w", err)
	}
	return nil
}
