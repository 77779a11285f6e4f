// Package pprofget fetches profiles from a running mailgate's
// /debug/pprof/ (served on its metrics listener) for the bench harnesses.
package pprofget

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Fetch saves http://metrics/debug/pprof/NAME?QUERY into file. It returns
// an error when mailgate serves no pprof on its metrics listener.
func Fetch(metrics, name, query, file string, timeout time.Duration) error {
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
