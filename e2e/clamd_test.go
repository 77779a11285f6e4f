package e2e_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/internal/e2e"
)

// checkVerdicts runs `mailgate check -c cfg --json` on the files and
// returns file name → "verdict rule,rule".
func checkVerdicts(t *testing.T, dir string, files ...string) map[string]string {
	t.Helper()
	out, errOut, code := runMailgate(t, dir, append([]string{"check", "-c", "mailgate.yaml", "--json"}, files...)...)
	if code != 0 {
		t.Fatalf("check exited %d:\n%s\n%s", code, out, errOut)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			File    string   `json:"file"`
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("check --json line %q: %v", line, err)
		}
		got[filepath.Base(r.File)] = r.Verdict + " " + strings.Join(r.Rules, ",")
	}
	return got
}

// TestCheckScansWithClamd: `mailgate check -c` with a clamd: section and
// the shipped antivirus pack, against a private clamd: EICAR plain,
// base64 and zipped is rejected, a clean message accepted, a message over
// clamd.max_size rejected at once (not deferred), and clamd stuck or
// stopped tempfails (fail closed).
func TestCheckScansWithClamd(t *testing.T) {
	cd := e2e.StartClamd(t, e2e.ClamdOptions{})
	dir := t.TempDir()
	root := e2e.RepoRoot(t)
	var names []string
	for _, m := range e2e.VirusMessages() {
		names = append(names, m.Name+".eml")
		writeFiles(t, dir, map[string]string{m.Name + ".eml": string(m.Data)})
	}
	big := e2e.MIMEAttachment("base64", "big.bin", e2e.Base64Lines(make([]byte, 300<<10)))
	writeFiles(t, dir, map[string]string{"big.eml": string(big)})
	cfg := func(addr, timeout string) {
		writeFiles(t, dir, map[string]string{"mailgate.yaml": fmt.Sprintf("upstream: smtp://127.0.0.1:1\npolicies: [%q]\nclamd: {address: %q, timeout: %s, max_size: 200KiB}\n",
			filepath.Join(root, "policies/facts/antivirus.yaml"), addr, timeout)})
	}
	want := map[string]string{
		"eicar-plain.eml":  "reject virus-found",
		"eicar-base64.eml": "reject virus-found",
		"eicar-zip.eml":    "reject virus-found",
		"clean.eml":        "accept ",
		"big.eml":          "reject virus-scan-too-large",
	}
	for _, addr := range []string{cd.TCP, cd.Socket} {
		cfg(addr, "10s")
		got := checkVerdicts(t, dir, append(names, "big.eml")...)
		for f, w := range want {
			if got[f] != w {
				t.Errorf("%s: %s: %q, want %q", addr, f, got[f], w)
			}
		}
	}

	cfg(cd.TCP, "500ms")
	cd.Freeze()
	got := checkVerdicts(t, dir, "clean.eml", "eicar-zip.eml")
	cd.Thaw()
	for _, f := range []string{"clean.eml", "eicar-zip.eml"} {
		if got[f] != "tempfail virus-scan-failed" {
			t.Errorf("clamd stuck: %s: %q, want tempfail virus-scan-failed", f, got[f])
		}
	}
	cd.Stop()
	got = checkVerdicts(t, dir, "clean.eml")
	if got["clean.eml"] != "tempfail virus-scan-failed" {
		t.Errorf("clamd stopped: %q, want tempfail virus-scan-failed", got["clean.eml"])
	}

	// Without clamd:, a config reading Virus is refused.
	writeFiles(t, dir, map[string]string{"mailgate.yaml": fmt.Sprintf("upstream: smtp://127.0.0.1:1\npolicies: [%q]\n", filepath.Join(root, "policies/facts/antivirus.yaml"))})
	for _, cmd := range [][]string{{"check", "-c", "mailgate.yaml", "clean.eml"}, {"lint", "-c", "mailgate.yaml"}} {
		_, errOut, code := runMailgate(t, dir, cmd...)
		if code != 1 || !strings.Contains(errOut, "no clamd: section") {
			t.Errorf("%s without clamd:: exit %d, %s", cmd[0], code, errOut)
		}
	}
}
