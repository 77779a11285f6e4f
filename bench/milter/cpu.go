package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// statFields are the fields of /proc/PID/stat after the command name:
// [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime (clock ticks).
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}

func tick(f []string, i int) int64 {
	if len(f) <= i {
		return 0
	}
	n, _ := strconv.ParseInt(f[i], 10, 64)
	return n
}

// postfixTicks is the CPU time (clock ticks) of the private Postfix: its
// master's own and that of its reaped children (cutime, cstime), plus
// every live child's. Taken before and after a cell, the difference
// counts each child once whether it ran through the cell, started or
// ended in it (an exiting smtpd's time moves into the master's cutime).
func postfixTicks(e *env) int64 {
	b, err := os.ReadFile(filepath.Join(e.pfQueue, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	f := statFields(master)
	total := tick(f, 11) + tick(f, 12) + tick(f, 13) + tick(f, 14)
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == master {
			continue
		}
		if f := statFields(pid); tick(f, 1) == int64(master) {
			total += tick(f, 11) + tick(f, 12)
		}
	}
	return total
}
