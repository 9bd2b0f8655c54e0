package durable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dealix/platform/internal/rls"
)

// Sleep pauses the run for d, durably: the wake-up time is recorded as the
// run's next checkpoint and the run is parked (status sleeping) without
// holding a worker, so the sleep outlives restarts. While parking, Sleep
// returns ErrSuspended: return it from the workflow function. When the run
// resumes at its wake-up time, the replayed Sleep returns nil.
func Sleep(ctx context.Context, d time.Duration) error {
	rs, seq, rec, span, err := beginStep(ctx, kindSleep, "sleep")
	if err != nil {
		return err
	}
	defer span.End()
	var wake time.Time
	if rec != nil {
		if err := json.Unmarshal(rec.Output, &wake); err != nil {
			return rs.failRun(fmt.Errorf("%w: recorded wake-up time at step %d: %v", ErrDecode, seq, err))
		}
		if !rs.now().Before(wake) {
			return nil
		}
		// Woken early (an operator's Resume): park again until the time.
		return rs.park(ctx, nil, &parking{status: StatusSleeping, readyAt: &wake, wakeAt: &wake})
	}
	wake = rs.now().Add(d).UTC()
	encoded, _ := json.Marshal(wake)
	rec = &StepRecord{Seq: seq, Kind: kindSleep, Name: "sleep", Status: "completed", Output: encoded, Attempts: 1}
	if d <= 0 {
		return rs.checkpoint(ctx, rec, nil)
	}
	return rs.park(ctx, rec, &parking{status: StatusSleeping, readyAt: &wake, wakeAt: &wake})
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
	if strings.TrimSpace(name) == "" {
		return zero, fmt.Errorf("%w: empty signal name", ErrInvalidName)
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
SELECT 1 FROM platform.durable_runs
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
		var one int
		if err := tx.QueryRow(ctx, lockRunSQL, rs.tenant, rs.id, rs.attempt).Scan(&one); err != nil {
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
		deadline := rs.deadline(seq, timeout)
		if deadline != nil && !rs.now().Before(*deadline) {
			rec = &StepRecord{Seq: seq, Kind: kindSignal, Name: name, Status: "timeout", Attempts: 1}
			return rs.checkpointTx(ctx, tx, rec, nil)
		}
		parked = true
		return rs.checkpointTx(ctx, tx, nil, &parking{status: StatusWaiting, readyAt: deadline, wakeAt: deadline, waitSignal: &name, waitSeq: &seq})
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
// parked in this wait, or timeout from now; nil without timeout.
func (rs *runState) deadline(seq int, timeout time.Duration) *time.Time {
	if rs.waitSeq == seq && !rs.waitDeadline.IsZero() {
		d := rs.waitDeadline
		return &d
	}
	if timeout <= 0 {
		return nil
	}
	d := rs.now().Add(timeout).UTC()
	return &d
}

// Signal sends the signal name with payload (encoded as JSON) to tenant's
// run runID; see SignalTx.
func (rt *Runtime) Signal(ctx context.Context, tenant, runID, name string, payload any) error {
	err := rls.InTx(ctx, rt.cfg.App, tenant, func(tx pgx.Tx) error {
		return rt.SignalTx(ctx, tx, runID, name, payload)
	})
	if err == nil {
		rt.wake()
	}
	return err
}

const wakeWaiterSQL = `
UPDATE platform.durable_runs
SET ready_at = CASE WHEN status = 'waiting' AND wait_signal = $2 THEN $3 ELSE ready_at END
WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND id = $1
RETURNING status`

const insertSignalSQL = `
INSERT INTO platform.durable_signals (tenant_id, run_id, name, payload, created_at)
VALUES (NULLIF(current_setting('app.tenant_id', true), '')::uuid, $1, $2, $3, $4)`

// SignalTx sends the signal name with payload to run runID in the caller's
// transaction, which must be scoped to the run's tenant: the signal exists
// once tx commits, atomically with the caller's own writes. A run waiting
// for name becomes claimable at once; a signal sent before the run waits
// is kept for its wait. It returns ErrRunNotFound for an unknown run,
// ErrRunFinished for a final one (storing nothing), ErrNoTenant when tx has
// no tenant and an ErrEncode error for a payload JSON cannot encode.
func (rt *Runtime) SignalTx(ctx context.Context, tx pgx.Tx, runID, name string, payload any) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("%w: empty signal name", ErrInvalidName)
	}
	encoded, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("%w: payload of signal %q: %v", ErrEncode, name, err)
	}
	now := rt.cfg.Clock()
	var status Status
	err = tx.QueryRow(ctx, wakeWaiterSQL, runID, name, now).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return rt.missingRun(ctx, tx, runID)
	}
	if err != nil {
		return fmt.Errorf("durable: signal run: %w", err)
	}
	if status.Finished() {
		return fmt.Errorf("%w: run %q is %s", ErrRunFinished, runID, status)
	}
	if _, err := tx.Exec(ctx, insertSignalSQL, runID, name, encoded, now); err != nil {
		return tenantError(err, "store signal")
	}
	return nil
}

// missingRun explains why tx sees no run runID.
func (rt *Runtime) missingRun(ctx context.Context, tx pgx.Tx, runID string) error {
	var tenant string
	if err := tx.QueryRow(ctx, "SELECT coalesce(current_setting('app.tenant_id', true), '')").Scan(&tenant); err != nil {
		return fmt.Errorf("durable: read tenant: %w", err)
	}
	if tenant == "" {
		return ErrNoTenant
	}
	return fmt.Errorf("%w: %q", ErrRunNotFound, runID)
}
