package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLintCommand(t *testing.T) {
	bad := "../../rules/testdata/"
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string   // substring
		stderr []string // substrings, in order
	}{
		{"embedded default", nil, 0, "ok: embedded default pack", nil},
		{"shipped pack", []string{"-p", "../../policies/default.yaml"}, 0, "ok: 1 policy file: ", nil},
		{"misspelt field", []string{"-p", bad + "bad-misspelt.yaml"}, 1, "",
			[]string{bad + "bad-misspelt.yaml:3:30: rule block-executables: when: type mimeparse.Part has no field Extension (did you mean Ext?)"}},
		{"non-bool when", []string{"-p", bad + "bad-nonbool.yaml"}, 1, "",
			[]string{bad + "bad-nonbool.yaml:3:12: rule subject-only: when: must be true or false"}},
		{"reject with 4xx", []string{"-p", bad + "bad-reply.yaml"}, 1, "",
			[]string{bad + "bad-reply.yaml:5:13: rule reject-soft: reply: reject needs a 5xx reply, not 450"}},
		{"unknown key", []string{"-p", bad + "bad-unknown-key.yaml"}, 1, "",
			[]string{bad + "bad-unknown-key.yaml:3:5: unknown key acton in a rule (did you mean action?)"}},
		{"several files, every error", []string{"-p", bad + "bad-stage.yaml", "-p", bad + "bad-list.yaml"}, 1, "",
			[]string{bad + "bad-stage.yaml:4:39: ", bad + "bad-list.yaml:3:41: "}},
		{"rule over the cost budget", []string{"-p", bad + "bad-cost.yaml"}, 1, "",
			[]string{bad + "bad-cost.yaml:6:12: rule parts-cubed: when: estimated worst-case cost 7.0e+09 steps is over the budget of 1.0e+09 (mime_parts 1000, archive_entries 1000)"}},
		{"pack needing a list", []string{"-p", "../../policies/compliance-headers.yaml", "-l", "internal_domains=../../policies/lists/internal_domains.txt"}, 0, "ok: 1 policy file: ", nil},
		{"pack without its list", []string{"-p", "../../policies/compliance-headers.yaml"}, 1, "", []string{"list internal_domains is not configured"}},
		{"bad list flag", []string{"-l", "nolist"}, 2, "", []string{"want NAME=FILE"}},
		{"missing file", []string{"-p", "nowhere.yaml"}, 1, "", []string{"nowhere.yaml:1:1: reading policy: no such file or directory"}},
		{"both -c and -p", []string{"-c", "x.yaml", "-p", "y.yaml"}, 2, "", []string{"Usage:"}},
		{"stray argument", []string{"x.yaml"}, 2, "", []string{"Usage:"}},
		{"bad flag", []string{"--nope"}, 2, "", []string{"flag provided but not defined"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runLint(c.args, &out, &errb)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), c.stdout) {
				t.Errorf("stdout %q lacks %q", out.String(), c.stdout)
			}
			rest := errb.String()
			for _, s := range c.stderr {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("stderr %q lacks %q", errb.String(), s)
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

func TestLintConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mailgate.yaml", "upstream: smtp://127.0.0.1:10025\npolicies: [p.yaml]\nlists: {internal_domains: d.txt}\n")
	write("p.yaml", "rules:\n  - name: internal\n    when: 'Envelope.FromDomain in Lists.internal_domains'\n    score: -1\n")
	write("d.txt", "example.org\n")
	var out, errb bytes.Buffer
	if code := runLint([]string{"-c", filepath.Join(dir, "mailgate.yaml")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	write("mailgate.yaml", "upstream: smtp://127.0.0.1:10025\npolicies: [p.yaml]\n")
	errb.Reset()
	if code := runLint([]string{"-c", filepath.Join(dir, "mailgate.yaml")}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "p.yaml:3:41: rule internal: when: list internal_domains is not configured") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

func TestTestCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runTest([]string{"-p", "../../rules/testdata/valid.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "7 tests, 7 passed, 0 failed") {
		t.Errorf("stdout: %s", out.String())
	}
	out.Reset()
	if code := runTest([]string{"-p", "../../rules/testdata/failing-tests.yaml"}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out.String())
	}
	for _, s := range []string{"FAIL  ../../rules/testdata/failing-tests.yaml:7: wrong on purpose", "verdict: want reject, got accept", "2 tests, 1 passed, 1 failed"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("stdout lacks %q:\n%s", s, out.String())
		}
	}
	errb.Reset()
	if code := runTest([]string{"-p", "../../rules/testdata/bad-reply.yaml"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bad-reply.yaml:5:13:") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if code := runTest([]string{"extra"}, &out, &errb); code != 2 {
		t.Fatalf("extra argument: exit %d, want 2", code)
	}
	// Without -c or -p: the embedded default pack with its embedded
	// fixtures (exit 2 before: they were not embedded).
	out.Reset()
	if code := runTest(nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "10 tests, 10 passed, 0 failed") {
		t.Fatalf("no flags: exit %d, want 0 and the default pack's 10 tests:\n%s%s", code, out.String(), errb.String())
	}
}

// TestTestConfigEveryPack: `mailgate test -c` on a configuration that
// loads every shipped pack runs each pack's tests against its own rules,
// and all pass (64 of 82 failed when each ran against the whole set).
func TestTestConfigEveryPack(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	packs, _ := filepath.Glob(filepath.Join(root, "policies", "*.yaml"))
	if len(packs) < 5 {
		t.Fatalf("found %d packs", len(packs))
	}
	// The configuration's own tests check what the packs do together: an
	// executable is refused by the first pack that sees it; an external
	// message is tagged by compliance-headers and its subject prefixed by
	// spam-basics' rules only when they match.
	cfg := fmt.Sprintf("upstream: maildir:./mail\npolicies: [%s]\nlists: {internal_domains: %s}\n"+
		"tests:\n"+
		"  - name: every pack together refuses an executable\n"+
		"    message: %s\n"+
		"    expect: {verdict: reject}\n"+
		"  - name: every pack together passes a PDF\n"+
		"    message: %s\n"+
		"    expect: {verdict: accept}\n",
		strings.Join(packs, ", "), filepath.Join(root, "policies", "lists", "internal_domains.txt"),
		filepath.Join(root, "testdata", "attacks", "exe-attachment.eml"), filepath.Join(root, "testdata", "benign", "pdf-attachment.eml"))
	file := filepath.Join(t.TempDir(), "mailgate.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	code := runTest([]string{"-v", "-c", file}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), " passed, 0 failed") ||
		!strings.Contains(out.String(), "mailgate.yaml:5: every pack together refuses an executable") ||
		!strings.Contains(out.String(), "mailgate.yaml:8: every pack together passes a PDF") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	t.Log(lastLine(out.String()))
	// A broken test in the configuration is a load error with its place.
	bad := strings.Replace(cfg, "expect: {verdict: accept}", "expect: {verdict: acept}", 1)
	if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := runLint([]string{"-c", file}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `mailgate.yaml:10:23: tests: expect: verdict: "acept" is not one of`) {
		t.Fatalf("lint -c with a broken config test: exit %d\n%s", code, errb.String())
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
