package errs

import (
	"errors"
	"fmt"
)

var (
	// ErrNoTenant is returned when a call needs a tenant and neither its
	// context nor its transaction names one. Go code denies by default, as
	// the row-level security policies do.
	ErrNoTenant = errors.New("dealix: no tenant")
	// ErrInvalidTenant is returned for a tenant id that is not a UUID; it is
	// refused before it reaches SQL.
	ErrInvalidTenant = errors.New("dealix: tenant id is not a UUID")
	// ErrInvalidConfig is returned by constructors for a configuration they
	// cannot run with. The error wrapping it says which field is wrong.
	ErrInvalidConfig = errors.New("dealix: invalid configuration")
	// ErrTenantMismatch is what a *TenantMismatchError matches with
	// errors.Is.
	ErrTenantMismatch = errors.New("dealix: tenant of the context differs from the transaction's")
)

// TenantMismatchError is returned by a …Tx call whose context names a tenant
// other than the one the caller's transaction is scoped to. Nothing was
// written and the transaction's scope is unchanged: a …Tx never re-scopes
// the caller's transaction.
type TenantMismatchError struct {
	// Context is the tenant the call's context names.
	Context string
	// Transaction is the tenant the transaction is scoped to.
	Transaction string
}

// Error implements error.
func (e *TenantMismatchError) Error() string {
	return fmt.Sprintf("dealix: context names tenant %s but the transaction is scoped to %s", e.Context, e.Transaction)
}

// Is makes errors.Is(err, ErrTenantMismatch) true for a *TenantMismatchError.
func (e *TenantMismatchError) Is(target error) bool { return target == ErrTenantMismatch }

// Config returns an error matching ErrInvalidConfig whose text names the
// package and what is wrong, as "dlq: invalid configuration: Workers must
// be positive".
func Config(pkg, format string, args ...any) error {
	return &configError{pkg: pkg, msg: fmt.Sprintf(format, args...)}
}

type configError struct{ pkg, msg string }

func (e *configError) Error() string { return e.pkg + ": invalid configuration: " + e.msg }

func (e *configError) Unwrap() error { return ErrInvalidConfig }
