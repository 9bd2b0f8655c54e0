// Package errs holds the error values every package of the library shares.
//
// Each public package re-exports them (tenancy.ErrNoTenant is errs.ErrNoTenant,
// and so is durable.ErrNoTenant), so errors.Is matches whichever package
// returned the error.
package errs
