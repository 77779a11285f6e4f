package main

import (
	"fmt"
	"path/filepath"
	"time"

	"mailgate/bench/pprofget"
)

// profileDuring fetches a CPU profile of seconds while load runs, then a
// heap profile; it returns a note for the report.
func profileDuring(dir, metrics, label string, seconds int, load func()) string {
	cpu := filepath.Join(dir, label+".cpu.pprof")
	errc := make(chan error, 1)
	go func() {
		errc <- pprofget.Fetch(metrics, "profile", fmt.Sprintf("seconds=%d", seconds), cpu, time.Duration(seconds+30)*time.Second)
	}()
	load()
	if err := <-errc; err != nil {
		return fmt.Sprintf("profile %s: %v", label, err)
	}
	heap := filepath.Join(dir, label+".heap.pprof")
	if err := pprofget.Fetch(metrics, "heap", "", heap, 30*time.Second); err != nil {
		return fmt.Sprintf("profile %s: %v", label, err)
	}
	return fmt.Sprintf("profiles %s and %s (go tool pprof -top FILE)", cpu, heap)
}
