package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
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
		done <- fetchProfile(e.metrics, "profile", fmt.Sprintf("seconds=%d", pprofSeconds), cpu, time.Duration(pprofSeconds+30)*time.Second)
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
			if err := fetchProfile(e.metrics, "heap", "", heap, 30*time.Second); err != nil {
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

// fetchProfile saves http://metrics/debug/pprof/NAME?QUERY into file.
func fetchProfile(metrics, name, query, file string, timeout time.Duration) error {
	cl := &http.Client{Timeout: timeout}
	url := "http://" + metrics + "/debug/pprof/" + name
	if query != "" {
		url += "?" + query
	}
	resp, err := cl.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
