package idempotency_test

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuUsed returns the CPU time (user and system) this process has used,
// and the CPU time used by the PostgreSQL server processes on this machine
// (running and exited: the postmaster's reaped children count), 0 when
// none is visible, as when the database is on another host. On a saturated
// machine a request's share of both is what bounds throughput, and unlike
// requests per second it does not swing with the scheduler.
func cpuUsed() (self, server time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return self, 0
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		ticks += postgresTicks("/proc/" + e.Name() + "/stat")
	}
	return self, time.Duration(ticks) * time.Second / clockTicks
}

// postgresTicks returns utime+stime+cutime+cstime from a /proc/<pid>/stat
// of a process named postgres, 0 for any other process or an unreadable
// file (a process that has just exited).
func postgresTicks(path string) int64 {
	stat, err := os.ReadFile(path)
	if err != nil || !bytes.Contains(stat, []byte("(postgres)")) {
		return 0
	}
	// The fields after the command's closing parenthesis start with the
	// state (field 3); utime..cstime are fields 14 to 17.
	fields := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
	if len(fields) < 15 {
		return 0
	}
	var sum int64
	for _, f := range fields[11:15] {
		n, _ := strconv.ParseInt(string(f), 10, 64)
		sum += n
	}
	return sum
}
