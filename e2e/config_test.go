package e2e_test

// The config file's policy set as the built binary loads it: `policies:`
// absent runs the embedded default pack, `policies: []` none (with a
// warning at start and at every reload), and serve, check -c, lint -c and
// test -c all load the same rules from the same file (docs/DESIGN.md
// "Configuration").

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// writeFiles writes name → content under dir, creating directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runMailgate runs the built binary in dir and returns its stdout, stderr
// and exit code.
func runMailgate(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mailgate %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// logRecords parses the JSON log lines of a process's output.
func logRecords(out string) []map[string]any {
	var recs []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			recs = append(recs, m)
		}
	}
	return recs
}

// countMsg counts the log records with this level and message.
func countMsg(out, level, msg string) int {
	n := 0
	for _, r := range logRecords(out) {
		if r["level"] == level && r["msg"] == msg {
			n++
		}
	}
	return n
}

// waitMsg waits until count log records with level and msg are out.
func waitMsg(t *testing.T, p *e2e.Process, level, msg string, count int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for countMsg(p.Output(), level, msg) < count {
		if time.Now().After(deadline) {
			t.Fatalf("want %d %s %q log lines; output:\n%s", count, level, msg, lastLines(p.Output(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const noPolicyWarning = "no policies: every message is relayed unchecked (policies: [] in the config)"

// TestConfigPoliciesAbsentRunsDefaultPack is README set-up 2's case: a
// config with listen and upstream only must refuse a PE attachment (the
// embedded default pack), and only `policies: []` lets it through, with a
// warning at start and after SIGHUP.
func TestConfigPoliciesAbsentRunsDefaultPack(t *testing.T) {
	exe, err := os.ReadFile(filepath.Join(e2e.RepoRoot(t), "testdata/attacks/exe-attachment.eml"))
	if err != nil {
		t.Fatal(err)
	}
	exe = bytes.ReplaceAll(bytes.ReplaceAll(exe, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	for _, tc := range []struct {
		name, policies string
		wantCode       int
	}{
		{"absent", "", 550},
		{"empty list", "policies: []\n", 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := uniqueAddr(t)
			writeFiles(t, dir, map[string]string{"mailgate.yaml": "listen: [\"" + addr + "\"]\nhostname: mailgate.test\n" +
				"upstream: maildir:mail\nlog: {format: json}\n" + tc.policies})
			p := e2e.StartMailgate(t, dir, addr, "serve", "-c", "mailgate.yaml")
			o := runTx(dialClient(t, addr), "alice@sender.test", "bob@example.net", exe)
			if o.reply.Code != tc.wantCode {
				t.Fatalf("final reply %v, want %d", o.reply, tc.wantCode)
			}
			delivered := len(e2e.ReadMaildir(filepath.Join(dir, "mail")))
			warnings := countMsg(p.Output(), "WARN", noPolicyWarning)
			if tc.wantCode == 550 {
				if delivered != 0 || warnings != 0 {
					t.Errorf("delivered %d, no-policy warnings %d; want 0, 0", delivered, warnings)
				}
				return
			}
			if delivered != 1 {
				t.Errorf("delivered %d, want 1", delivered)
			}
			waitMsg(t, p, "WARN", noPolicyWarning, 1)
			if err := p.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitMsg(t, p, "INFO", "configuration reloaded", 1)
			waitMsg(t, p, "WARN", noPolicyWarning, 2)
		})
	}
}

// TestLintConfigRefusesWhatServeRefuses: a misspelt key, a limit that
// would switch a bound off, a bad hostname or a missing certificate is an
// error for lint -c exactly as for serve -c, with the same file:line:col
// (check -c and test -c read the file the same way).
func TestLintConfigRefusesWhatServeRefuses(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"unknown key", "limits:\n  message_sise: 1MiB\n", "mailgate.yaml:4:3: limits.message_sise: unknown key (did you mean message_size?)"},
		{"negative limit", "limits:\n  mime_depth: -1\n", "mailgate.yaml:4:15: limits.mime_depth: -1 must be greater than 0"},
		{"bad hostname", "hostname: mx.example.org;\n", "mailgate.yaml:3:11: hostname: \"mx.example.org;\" is not a domain name"},
		{"missing certificate", "tls: {cert: nope.pem, key: nope.pem}\n", "mailgate.yaml: tls: open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"mailgate.yaml": "listen: [\"127.0.0.1:1\"]\nupstream: maildir:mail\n" + tc.src})
			cmds := [][]string{{"lint", "-c", "mailgate.yaml"}, {"serve", "-c", "mailgate.yaml"}}
			if tc.name != "missing certificate" { // check and test open no listener, so no certificate
				cmds = append(cmds, []string{"check", "-c", "mailgate.yaml", "x.eml"}, []string{"test", "-c", "mailgate.yaml"})
			}
			for _, cmd := range cmds {
				stdout, stderr, code := runMailgate(t, dir, cmd...)
				if code != 1 || !strings.Contains(stderr, tc.want) {
					t.Errorf("%s: exit %d, stderr %q, stdout %.200q; want exit 1 and %q", strings.Join(cmd, " "), code, stderr, stdout, tc.want)
				}
			}
		})
	}
}

// TestCommandsLoadSamePolicySet: serve, check -c, lint -c and test -c name
// the same rules for a config without policies:, with policies: [], and
// with a relative policy path given from another working directory.
func TestCommandsLoadSamePolicySet(t *testing.T) {
	root := e2e.RepoRoot(t)
	benign := filepath.Join(root, "testdata/benign/plain-text.eml")
	local := "rules:\n  - name: local-vip\n    when: 'Envelope.FromDomain in Lists.vip'\n    score: 1\n" +
		"  - name: local-sender\n    when: 'Envelope.FromDomain == \"example.com\"'\n    score: 1\n"
	defaultRules := "default-fail-closed-limits,default-inspection-failed,default-executable-content,default-executable-names"
	for _, tc := range []struct {
		name, policies, want string
	}{
		{"absent", "", defaultRules},
		{"empty list", "policies: []\n", ""},
		{"relative", "policies: [local.yaml]\nlists: {vip: vip.txt}\n", "local-vip,local-sender"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addr := uniqueAddr(t)
			writeFiles(t, dir, map[string]string{
				"sub/mailgate.yaml": "listen: [\"" + addr + "\"]\nhostname: mailgate.test\nupstream: maildir:mail\n" +
					"log: {format: json}\n" + tc.policies,
				"sub/local.yaml": local,
				"sub/vip.txt":    "example.org\n",
			})
			// From dir, the config is sub/mailgate.yaml: its relative
			// paths must resolve from sub/, once.
			cfg := "sub/mailgate.yaml"
			got := map[string]string{}

			p := e2e.StartMailgate(t, dir, addr, "serve", "-c", cfg)
			for _, r := range logRecords(p.Output()) {
				if r["msg"] == "policies loaded" {
					got["serve"], _ = r["rules"].(string)
				}
			}
			if got["serve"] == "" && countMsg(p.Output(), "WARN", noPolicyWarning) != 1 {
				t.Errorf("serve logged neither its rules nor the no-policy warning:\n%s", lastLines(p.Output(), 20))
			}

			stdout, stderr, code := runMailgate(t, dir, "lint", "-v", "-c", cfg)
			if code != 0 {
				t.Errorf("lint -c: exit %d: %s", code, stderr)
			}
			got["lint"] = ruleLines(stdout)

			stdout, stderr, _ = runMailgate(t, dir, "test", "-v", "-c", cfg)
			if !strings.Contains(stdout, "policies: "+cfg) {
				t.Errorf("test -c: %s%s", stdout, stderr)
			}
			got["test"] = ruleLines(stdout)

			stdout, stderr, code = runMailgate(t, dir, "check", "-c", cfg, benign)
			if code != 0 {
				t.Errorf("check -c: exit %d: %s", code, stderr)
			}
			got["check"] = checkTableRules(stdout)

			for cmd, rules := range got {
				if rules != tc.want {
					t.Errorf("%s: rules %q, want %q", cmd, rules, tc.want)
				}
			}
		})
	}
}

// ruleLines joins the names of lint -v's and test -v's "rule NAME" lines.
func ruleLines(out string) string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(line, "rule "); ok {
			names = append(names, n)
		}
	}
	return strings.Join(names, ",")
}

var tableEndRE = regexp.MustCompile(`^\d+ messages?:`)

// checkTableRules joins the rule names of check's hit table.
func checkTableRules(out string) string {
	var names []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "rule" && f[1] == "hits":
			in = true
		case tableEndRE.MatchString(line):
			in = false
		case in && len(f) > 0:
			names = append(names, f[0])
		}
	}
	return strings.Join(names, ",")
}
