package config

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServiceUnitPathsMatchDefaults: every path contrib/mailgate.service
// makes writable is one a default of serve -c writes to, and every path a
// default writes to is writable under the unit's ProtectSystem=strict.
func TestServiceUnitPathsMatchDefaults(t *testing.T) {
	f, err := os.Open("../contrib/mailgate.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var writable []string
	var workDir, cfgPath string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "StateDirectory":
			for _, d := range strings.Fields(v) {
				writable = append(writable, "/var/lib/"+d)
			}
		case "CacheDirectory":
			for _, d := range strings.Fields(v) {
				writable = append(writable, "/var/cache/"+d)
			}
		case "LogsDirectory":
			for _, d := range strings.Fields(v) {
				writable = append(writable, "/var/log/"+d)
			}
		case "RuntimeDirectory":
			for _, d := range strings.Fields(v) {
				writable = append(writable, "/run/"+d)
			}
		case "ReadWritePaths":
			for _, d := range strings.Fields(v) {
				writable = append(writable, strings.TrimLeft(d, "-+"))
			}
		case "PrivateTmp":
			if v == "yes" {
				writable = append(writable, "/tmp")
			}
		case "WorkingDirectory":
			workDir = v
		case "ExecStart":
			if _, after, ok := strings.Cut(v, " -c "); ok {
				cfgPath = strings.Fields(after)[0]
			}
		}
	}
	if cfgPath == "" || workDir == "" {
		t.Fatalf("unit: config %q, working directory %q", cfgPath, workDir)
	}
	// The defaults as serve -c resolves them for a config that sets only
	// what it must.
	cfg, err := Parse(cfgPath, []byte("upstream: smtp://127.0.0.1:10025\n"))
	if err != nil {
		t.Fatal(err)
	}
	resolve := func(p string) string {
		if p == "" {
			return "/tmp" // the system temp dir (os.TempDir without TMPDIR)
		}
		if !filepath.IsAbs(p) {
			return filepath.Join(workDir, p)
		}
		return p
	}
	used := map[string]string{"spool_dir": resolve(cfg.SpoolDir), "quarantine_dir": resolve(cfg.QuarantineDir)}
	under := func(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
	for key, p := range used {
		ok := false
		for _, w := range writable {
			ok = ok || under(p, w)
		}
		if !ok {
			t.Errorf("default %s resolves to %s, not writable under the unit (writable: %v)", key, p, writable)
		}
	}
	for _, w := range writable {
		ok := false
		for _, p := range used {
			ok = ok || under(p, w)
		}
		if !ok {
			t.Errorf("the unit makes %s writable, but no default writes there (defaults: %v)", w, used)
		}
	}
}
