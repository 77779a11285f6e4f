package mimeparse

import (
	"syscall"
	"time"
	"unsafe"
)

// cpuNow is the CPU time used by the process so far (CLOCK_PROCESS_CPUTIME_ID):
// on a machine shared with other work, CPU time per operation is what a
// benchmark can still compare when wall time is mostly waiting.
func cpuNow() time.Duration {
	var ts syscall.Timespec
	const clockProcessCPUTimeID = 2
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}
