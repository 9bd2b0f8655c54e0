package idempotency

import (
	"errors"
	"fmt"
	"time"

	"github.com/dealix/platform/internal/errs"
)

var (
	// ErrInvalidKey is returned for an idempotency key that is empty, longer
	// than MaxKeyLength characters, or holds a character outside printable
	// ASCII, and for an Idempotency-Key header that is not a bare token or
	// a structured-field string.
	ErrInvalidKey = errors.New("idempotency: invalid idempotency key")
	// ErrNoTenant is returned when a call has no tenant: its context
	// carries none (tenancy.WithTenant was not called) or, for a …Tx
	// method, its transaction is not scoped to one. Keys are always scoped
	// to a tenant, so nothing is read or written. It is the same value as
	// tenancy.ErrNoTenant and every other package's ErrNoTenant.
	ErrNoTenant = errs.ErrNoTenant
	// ErrInvalidTenant is returned for a tenant id that is not a UUID. It is
	// the same value as tenancy.ErrInvalidTenant.
	ErrInvalidTenant = errs.ErrInvalidTenant
	// ErrTenantMismatch is what the *tenancy.TenantMismatchError of a …Tx
	// method matches: the context names a tenant other than the one the
	// caller's transaction is scoped to. It is the same value as
	// tenancy.ErrTenantMismatch.
	ErrTenantMismatch = errs.ErrTenantMismatch
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
	// for a configuration they cannot work with; the error wrapping it says
	// which field is wrong. It is the same value as
	// tenancy.ErrInvalidConfig.
	ErrInvalidConfig = errs.ErrInvalidConfig
)

// InProgressError reports a key claimed by another request that has not
// finished. errors.Is(err, ErrInProgress) is true.
type InProgressError struct {
	// LeaseUntil is when the holder's claim expires, by the database's
	// clock; from then on the key can be claimed again by the same request
	// if the holder has not completed it. Zero when not known (the holder
	// had not committed its claim).
	LeaseUntil time.Time
}

func (e *InProgressError) Error() string {
	return fmt.Sprintf("%v (lease until %s)", ErrInProgress, e.LeaseUntil.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrInProgress) true.
func (e *InProgressError) Is(target error) bool { return target == ErrInProgress }
