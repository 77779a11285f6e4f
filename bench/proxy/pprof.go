package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// fetchProfile saves http://metrics/debug/pprof/NAME?QUERY into file. It
// returns an error when mailgate serves no pprof on its metrics listener.
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
		return fmt.Errorf("GET %s: %s (mailgate serves no /debug/pprof/ on metrics_listen)", url, resp.Status)
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

// profileDuring fetches a CPU profile of seconds while load runs, then a
// heap profile; it returns a note for the report.
func profileDuring(dir, metrics, label string, seconds int, load func()) string {
	cpu := filepath.Join(dir, label+".cpu.pprof")
	errc := make(chan error, 1)
	go func() {
		errc <- fetchProfile(metrics, "profile", fmt.Sprintf("seconds=%d", seconds), cpu, time.Duration(seconds+30)*time.Second)
	}()
	load()
	if err := <-errc; err != nil {
		return fmt.Sprintf("profile %s: %v", label, err)
	}
	heap := filepath.Join(dir, label+".heap.pprof")
	if err := fetchProfile(metrics, "heap", "", heap, 30*time.Second); err != nil {
		return fmt.Sprintf("profile %s: %v", label, err)
	}
	return fmt.Sprintf("profiles %s and %s (go tool pprof -top FILE)", cpu, heap)
}
