package idempotency

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidKey is returned for an idempotency key that is empty, longer
	// than MaxKeyLength characters, or holds a character outside printable
	// ASCII, and for an Idempotency-Key header that is not a bare token or
	// a structured-field string.
	ErrInvalidKey = errors.New("idempotency: invalid idempotency key")
	// ErrNoTenant is returned when the context carries no tenant
	// (tenancy.WithTenant was not called): keys are always scoped to a
	// tenant, so nothing is read or written.
	ErrNoTenant = errors.New("idempotency: no tenant in context")
	// ErrInProgress is returned by Claim when another request holds an
	// unexpired claim on the key. The error is a *InProgressError.
	ErrInProgress = errors.New("idempotency: request with this key is in progress")
	// ErrFingerprintMismatch is returned by Claim when the key was used
	// before for a different request (method, target, content type or body).
	ErrFingerprintMismatch = errors.New("idempotency: key was used for a different request")
	// ErrClaimLost is returned by Complete and Release when the claim is no
	// longer held by the given token: its lease expired and another request
	// took it over, or it was already completed or released.
	ErrClaimLost = errors.New("idempotency: claim no longer held")
	// ErrNotFound is returned by Lookup for a key with no unexpired entry.
	ErrNotFound = errors.New("idempotency: key not found")
	// ErrInvalidConfig is returned by NewStore, NewMiddleware and NewSweeper
	// for a configuration they cannot work with.
	ErrInvalidConfig = errors.New("idempotency: invalid configuration")
)

// InProgressError reports a key claimed by another request that has not
// finished. errors.Is(err, ErrInProgress) is true.
type InProgressError struct {
	// LeaseUntil is when the holder's claim expires; from then on the key
	// can be claimed again if the holder has not completed it.
	LeaseUntil time.Time
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("%v (lease until %s)", ErrInProgress, e.LeaseUntil.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrInProgress) true.
func (e *InProgressError) Is(target error) bool { return target == ErrInProgress }

func invalidConfig(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
