//go:build !linux

package idempotency_test

import "time"

// cpuUsed reports nothing where /proc is not there to read: the benchmarks
// then report throughput only.
func cpuUsed() (self, server time.Duration) { return 0, 0 }
