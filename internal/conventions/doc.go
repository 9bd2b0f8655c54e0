// Package conventions holds no code: its test checks, across every package
// of the library at once, the conventions the README states — a call with
// no tenant fails with the one shared ErrNoTenant, a …Tx whose context
// names another tenant is refused with the typed TenantMismatchError, and
// the caller's transaction keeps its tenant after every …Tx returns.
package conventions
