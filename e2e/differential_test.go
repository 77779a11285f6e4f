package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// TestDifferentialServeCheck: every message under testdata/ (attacks,
// benign, mime) goes through `serve` (with a recording upstream) and
// through `check --json --out` with the same config and the same envelope.
// Verdict, rules and the bytes delivered must be identical: what check
// says on last month's mail is what serve does (one transaction object,
// one config; docs/DESIGN.md "Invariants").
//
// The messages are sent as SMTP carries them: line endings made CRLF and a
// final CRLF added; a message that still holds a bare CR or a NUL is left
// out (serve refuses it with 550 5.5.2 before any policy runs, check reads
// files), and counted.
func TestDifferentialServeCheck(t *testing.T) {
	root := e2e.RepoRoot(t)
	dir := t.TempDir()
	var files []string // relative to dir, as given to check
	skipped := 0
	for _, cat := range []string{"attacks", "benign", "mime"} {
		paths, _ := filepath.Glob(filepath.Join(root, "testdata", cat, "*.eml"))
		if len(paths) == 0 {
			t.Fatalf("no messages under testdata/%s", cat)
		}
		if err := os.MkdirAll(filepath.Join(dir, "in", cat), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			msg := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
			if !bytes.HasSuffix(msg, []byte("\r\n")) {
				msg = append(msg, '\r', '\n')
			}
			if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) || bytes.IndexByte(msg, 0) >= 0 {
				skipped++
				continue
			}
			rel := filepath.Join("in", cat, filepath.Base(p))
			if err := os.WriteFile(filepath.Join(dir, rel), msg, 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, rel)
		}
	}

	// One configuration for both: the packs that keep no state between
	// messages (spam-basics' greylisting would defer serve's first
	// message only), with the lists they need.
	up := startUpstream(t, upstreamScript{})
	addr := uniqueAddr(t)
	var pols []string
	for _, p := range []string{"default.yaml", "dangerous-attachments.yaml", "office-macros.yaml", "compliance-headers.yaml"} {
		pols = append(pols, fmt.Sprintf("%q", filepath.Join(root, "policies", p)))
	}
	cfg := fmt.Sprintf("listen: [%q]\nhostname: mailgate.test\nupstream: smtp://%s\npolicies: [%s]\n"+
		"lists: {internal_domains: %q}\nspool_dir: %q\nquarantine_dir: %q\nlog: {format: json, level: info}\n",
		addr, up.Addr, strings.Join(pols, ", "), filepath.Join(root, "policies", "lists", "internal_domains.txt"),
		t.TempDir(), filepath.Join(dir, "quarantine"))
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const from, rcpt, helo = "alice@sender.test", "bob@example.net", "client.test"

	// serve: one session per message, in order.
	proc := e2e.StartMailgate(t, dir, addr, "serve", "-c", cfgPath)
	type result struct {
		verdict string
		rules   []string
		data    []byte // what the upstream received; nil when nothing was delivered
	}
	served := map[string]*result{}
	for _, rel := range files {
		msg, _ := os.ReadFile(filepath.Join(dir, rel))
		before := len(up.Accepted())
		c := dialClient(t, addr)
		c.bound = 30 * time.Second
		c.read()
		c.cmd("EHLO " + helo)
		rp := tx(c, msg)
		c.cmd("QUIT")
		c.c.Close()
		res := &result{}
		if acc := up.Accepted(); len(acc) > before {
			res.data = acc[len(acc)-1].Data
		}
		served[rel] = res
		if rp.Err != nil {
			t.Fatalf("%s: %v", rel, rp.Err)
		}
	}
	// The transaction lines, in the order the messages went.
	var lines []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = lines[:0]
		sc := bufio.NewScanner(strings.NewReader(proc.Output()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "transaction" {
				lines = append(lines, m)
			}
		}
		if len(lines) >= len(files) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(lines) != len(files) {
		t.Fatalf("%d transaction lines for %d messages", len(lines), len(files))
	}
	for i, rel := range files {
		served[rel].verdict, _ = lines[i]["verdict"].(string)
		served[rel].rules = stringsOf(lines[i]["rules"])
	}

	// check: the same files, config and envelope.
	out := filepath.Join(dir, "out")
	args := append([]string{"check", "-c", cfgPath, "--json", "--out", out, "--from", from, "--rcpt", rcpt,
		"--client-ip", "127.0.0.1", "--helo", helo}, files...)
	cmd := exec.Command(e2e.Binary(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() > 1 {
		t.Fatalf("check: %v\n%s", err, stderr.String())
	}
	checked := map[string]*result{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 16<<20), 16<<20)
	for sc.Scan() {
		var j struct {
			File    string   `json:"file"`
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
		}
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("check --json line %q: %v", sc.Text(), err)
		}
		res := &result{verdict: j.Verdict, rules: j.Rules}
		if j.Verdict == "accept" {
			res.data, _ = os.ReadFile(filepath.Join(out, j.File))
		}
		checked[j.File] = res
	}

	same, delivered := 0, 0
	for _, rel := range files {
		s, c := served[rel], checked[rel]
		if c == nil {
			t.Errorf("%s: check reported nothing", rel)
			continue
		}
		sr, cr := slices.Clone(s.rules), slices.Clone(c.rules)
		sort.Strings(sr)
		sort.Strings(cr)
		ok := true
		if s.verdict != c.verdict {
			t.Errorf("%s: serve's verdict %s, check's %s", rel, s.verdict, c.verdict)
			ok = false
		}
		if !slices.Equal(sr, cr) {
			t.Errorf("%s: serve's rules %v, check's %v", rel, s.rules, c.rules)
			ok = false
		}
		if s.verdict == "accept" {
			delivered++
			if !bytes.Equal(s.data, c.data) {
				t.Errorf("%s: the upstream got %d bytes, check --out wrote %d, and they differ", rel, len(s.data), len(c.data))
				ok = false
			}
		} else if s.data != nil {
			t.Errorf("%s: verdict %s, yet the upstream got the message", rel, s.verdict)
			ok = false
		}
		if ok {
			same++
		}
	}
	t.Logf("%d messages through serve and check: %d identical (%d delivered and compared byte for byte); %d left out for a bare CR or NUL",
		len(files), same, delivered, skipped)
}

// stringsOf turns a JSON list into strings.
func stringsOf(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
