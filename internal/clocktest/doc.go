// Package clocktest gives the library's tests a settable clock, so leases,
// expiry and retention are tested exactly and without sleeping. Its Now
// method fits every package's Now / Clock configuration field.
package clocktest
