package parser

import (
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// cpuNow is the CPU time used by the process so far (CLOCK_PROCESS_CPUTIME_ID).
// On a machine shared with other work wall time is mostly waiting for a
// core; CPU time per operation still compares the parsers (run with -cpu 1).
func cpuNow() time.Duration {
	var ts syscall.Timespec
	const clockProcessCPUTimeID = 2
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// reportCPU adds cpu-ns/op and the throughput it gives (cpu-MB/s).
func reportCPU(b *testing.B, start time.Duration, size int) {
	if start == 0 || b.N == 0 {
		return
	}
	ns := float64(cpuNow()-start) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	b.ReportMetric(float64(size)*1e3/ns, "cpu-MB/s")
}
