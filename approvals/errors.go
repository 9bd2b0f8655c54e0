package approvals

import (
	"errors"
	"fmt"

	"github.com/dealix/platform/internal/errs"
)

var (
	// ErrInvalidAction is returned for an action that cannot be evaluated
	// or stored (empty kind, risk outside [0, 1], payload not JSON, …).
	// Nothing is stored.
	ErrInvalidAction = errors.New("approvals: invalid action")
	// ErrInvalidPolicy is returned by New and Policy.Validate for a rule
	// that cannot be applied.
	ErrInvalidPolicy = errors.New("approvals: invalid policy")
	// ErrInvalidConfig is returned by New, NewSweeper and NewAdminHandler
	// for a configuration they cannot run with; the error wrapping it says
	// which field. It is the same value in every package of the library
	// (tenancy.ErrInvalidConfig is too).
	ErrInvalidConfig = errs.ErrInvalidConfig
	// ErrInvalidTenant is returned for a tenant id that is not a UUID. It
	// is the same value in every package of the library.
	ErrInvalidTenant = errs.ErrInvalidTenant
	// ErrNoTenant is returned when a call needs a tenant and neither its
	// context (request path), its tenant argument (the …ForTenant
	// variants) nor its transaction (the …Tx variants) names one. It is
	// the same value in every package of the library:
	// errors.Is(err, tenancy.ErrNoTenant) matches it.
	ErrNoTenant = errs.ErrNoTenant
	// ErrTenantMismatch is matched (errors.Is) by the
	// *tenancy.TenantMismatchError a …Tx method returns when its context
	// names a tenant other than its transaction's. It is the same value in
	// every package of the library.
	ErrTenantMismatch = errs.ErrTenantMismatch
	// ErrNoActor is returned when neither the call nor its context's
	// principal names who acts.
	ErrNoActor = errors.New("approvals: no actor")
	// ErrInvalidDecision is returned for a decision that is neither
	// StatusApproved nor StatusRejected, or a comment that is too long.
	ErrInvalidDecision = errors.New("approvals: invalid decision")
	// ErrInvalidID is returned for a request id that is not a UUID.
	ErrInvalidID = errors.New("approvals: request id is not a UUID")
	// ErrNotFound is returned for a request that does not exist in the
	// caller's tenant (requests of other tenants are invisible).
	ErrNotFound = errors.New("approvals: request not found")
	// ErrExpired is returned when deciding a request whose time to live
	// has passed; it stays undecided and is never carried out.
	ErrExpired = errors.New("approvals: request expired")
	// ErrSelfApproval is returned when a requester approves their own
	// request and Config.AllowSelfApproval is false.
	ErrSelfApproval = errors.New("approvals: requester cannot approve their own request")
	// ErrAlreadyDecided is matched (errors.Is) by a *ConflictError.
	ErrAlreadyDecided = errors.New("approvals: request already decided otherwise")
	// ErrIdempotencyKeyReused is returned when an idempotency key already
	// names a request for a different action.
	ErrIdempotencyKeyReused = errors.New("approvals: idempotency key reused for a different action")
)

// ConflictError is returned when a request was already decided the other
// way: the first decision wins and is kept. It matches ErrAlreadyDecided.
type ConflictError struct {
	// Attempted is the decision that was refused.
	Attempted Status
	// Recorded is the decision that stands.
	Recorded Decision
}

// Error describes the conflict.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("approvals: request %s was already %s by %s; %s refused",
		e.Recorded.RequestID, e.Recorded.Status, e.Recorded.DecidedBy, e.Attempted)
}

// Is makes errors.Is(err, ErrAlreadyDecided) true.
func (e *ConflictError) Is(target error) bool { return target == ErrAlreadyDecided }
