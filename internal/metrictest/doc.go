// Package metrictest reads the metrics the library's packages publish
// through the global OpenTelemetry meter provider, for their tests.
//
// InstallGlobal sets a meter provider with a manual reader as the global
// one. The packages create their instruments from the global meter at
// start-up and the global provider forwards them to the first provider
// installed, so call it once per test binary, from a test that does not
// run in parallel with others that record the same metrics.
package metrictest
