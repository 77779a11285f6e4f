package main

import (
	"fmt"
	"path/filepath"
	"time"

	"mailgate/bench/pprofget"
)

// metricsLine gives mailgate a metrics_listen when -pprof asks for
// profiles (its /debug/pprof/ is served there); none otherwise, so the
// measured set-up is the same as without the flag.
func metricsLine(e *env) string {
	if pprofDir == "" {
		return ""
	}
	e.metrics = fmt.Sprintf("127.0.0.1:%d", freePort())
	return fmt.Sprintf("metrics_listen: %s\n", e.metrics)
}

// profileTarget fetches a CPU profile of mailgate for -pprof-seconds while
// smtp-source keeps sending file through target at sessions, then a heap
// profile. It runs after the measured cells, so the profiler's own cost is
// in no reported figure. It returns a note for the report.
func profileTarget(e *env, target, file string, sessions int) string {
	label := target + fmt.Sprintf("-%s-s%d", filepath.Base(file), sessions)
	cpu := filepath.Join(pprofDir, label+".cpu.pprof")
	done := make(chan error, 1)
	go func() {
		done <- pprofget.Fetch(e.metrics, "profile", fmt.Sprintf("seconds=%d", pprofSeconds), cpu, time.Duration(pprofSeconds+30)*time.Second)
	}()
	cpu0 := cpuTicks(e.mg.Process.Pid)
	msgs := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Sprintf("profile %s: %v", label, err)
			}
			heap := filepath.Join(pprofDir, label+".heap.pprof")
			if err := pprofget.Fetch(e.metrics, "heap", "", heap, 30*time.Second); err != nil {
				return fmt.Sprintf("profile %s: %v", label, err)
			}
			ms := float64(cpuTicks(e.mg.Process.Pid)-cpu0) * 10
			return fmt.Sprintf("profile of %s: %s and %s (go tool pprof -top FILE); %d messages, mailgate CPU %.2f ms/msg", label, cpu, heap, msgs, ms/float64(max(msgs, 1)))
		default:
		}
		n := max(200, sessions*4)
		if _, err := cell(e, target, file, n, sessions); err != nil {
			return fmt.Sprintf("profile %s: %v", label, err)
		}
		msgs += n
	}
}
