package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envPolicy shows the envelope a message was judged with in a header.
const envPolicy = `rules:
  - name: show-envelope
    when: 'true'
    headers:
      add: {X-Env: '{{ Envelope.From }} {{ join(Envelope.Rcpts, ",") }} {{ Client.IP }} {{ Client.HELO }}'}
`

func writeT(t *testing.T, path, data string) string {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCheckDefaultEnvelope: check and policy tests take the envelope from
// the message (Return-Path, else From; Delivered-To, else X-Original-To,
// else To and Cc), else sender@example.com and rcpt@example.net, client
// 192.0.2.1 HELO client.example.
func TestCheckDefaultEnvelope(t *testing.T) {
	dir := t.TempDir()
	pol := writeT(t, filepath.Join(dir, "env.yaml"), envPolicy)
	cases := map[string]struct{ msg, want string }{
		"return-path.eml": {"Return-Path: <bounce@lists.example>\r\nFrom: a@from.example\r\nDelivered-To: me@here.example\r\nTo: x@to.example\r\n\r\nb\r\n",
			"bounce@lists.example me@here.example 192.0.2.1 client.example"},
		"from-only.eml": {"From: Alice <a@from.example>\r\nTo: x@to.example, Y <y@to.example>\r\nCc: z@cc.example\r\n\r\nb\r\n",
			"a@from.example x@to.example,y@to.example,z@cc.example 192.0.2.1 client.example"},
		"original-to.eml": {"From: a@from.example\r\nX-Original-To: list@here.example\r\nTo: x@to.example\r\n\r\nb\r\n",
			"a@from.example list@here.example 192.0.2.1 client.example"},
		"nothing.eml": {"Subject: bare\r\n\r\nb\r\n", "sender@example.com rcpt@example.net 192.0.2.1 client.example"},
		"null.eml":    {"Return-Path: <>\r\nFrom: mailer-daemon@x.example\r\nSubject: bounce\r\n\r\nb\r\n", " rcpt@example.net 192.0.2.1 client.example"},
	}
	var args []string
	for name, c := range cases {
		args = append(args, writeT(t, filepath.Join(dir, name), c.msg))
	}
	code, stdout, stderr := runCheckT(t, append([]string{"--json", "-p", pol}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, j := range decodeLines(t, stdout) {
		if want := cases[filepath.Base(j.File)].want; j.HeadersAdded["X-Env"] != want {
			t.Errorf("%s: envelope %q, want %q", filepath.Base(j.File), j.HeadersAdded["X-Env"], want)
		}
	}
	// Flags still win.
	_, stdout, _ = runCheckT(t, "--json", "-p", pol, "--from", "f@flag.example", "--rcpt", "r@flag.example", args[0])
	if j := decodeLines(t, stdout)[0]; !strings.HasPrefix(j.HeadersAdded["X-Env"], "f@flag.example r@flag.example ") {
		t.Errorf("flags: %q", j.HeadersAdded["X-Env"])
	}
	// A policy test sees the same envelope.
	writeT(t, filepath.Join(dir, "tested.yaml"), envPolicy+`tests:
  - message: from-only.eml
    expect: {headers: {X-Env: "a@from.example x@to.example,y@to.example,z@cc.example 192.0.2.1 client.example"}}
  - message: nothing.eml
    expect: {headers: {X-Env: "sender@example.com rcpt@example.net 192.0.2.1 client.example"}}
`)
	var out, errb strings.Builder
	if code := runTest([]string{"-p", filepath.Join(dir, "tested.yaml")}, &out, &errb); code != 0 {
		t.Errorf("policy test with the default envelope: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestCheckSkippedAndStdin: a directory walk says which files it skipped
// and why, reads messages with a byte-order mark or "Subject :", and "-"
// reads standard input; mbox messages are named by position and
// Message-ID; "1 message", not "1 messages".
func TestCheckSkippedAndStdin(t *testing.T) {
	dir := t.TempDir()
	writeT(t, filepath.Join(dir, "notes.txt"), "not mail at all\n")
	writeT(t, filepath.Join(dir, "data.json"), `{"a": 1}`)
	writeT(t, filepath.Join(dir, "empty.msg"), "")
	writeT(t, filepath.Join(dir, "bom.txt"), "\xef\xbb\xbfFrom: <abuse@example.com>\nSubject: report\n\nbody\n")
	writeT(t, filepath.Join(dir, "obsolete.msg"), "Subject :obsolete syntax\r\nFrom : a@example.com\r\n\r\nbody\r\n")
	writeT(t, filepath.Join(dir, "box.mbox.txt"), "\xef\xbb\xbfFrom -\nFrom: a@example.com\nMessage-ID: <one@example.com>\n\n1\n\nFrom -\nFrom: b@example.com\nMessage-ID: <two@example.com>\n\n2\n")
	code, stdout, stderr := runCheckT(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"bom.txt: accept", "obsolete.msg: accept", "box.mbox.txt:1 <one@example.com>: accept", "box.mbox.txt:2 <two@example.com>: accept",
		"4 messages: accept 4", "skipped 3 files (name a file to check it anyway):",
		"1 empty: " + filepath.Join(dir, "empty.msg"),
		"2 not a message: the first line is not a header field: " + filepath.Join(dir, "data.json") + ", " + filepath.Join(dir, "notes.txt")} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}

	// Standard input.
	f := writeT(t, filepath.Join(t.TempDir(), "in.eml"), "From: a@example.com\r\nSubject: hi\r\nMessage-ID: <in@example.com>\r\n\r\nbody\r\n")
	in, _ := os.Open(f)
	defer in.Close()
	old := os.Stdin
	os.Stdin = in
	defer func() { os.Stdin = old }()
	code, stdout, stderr = runCheckT(t, "-")
	if code != 0 || !strings.Contains(stdout, "-: accept") || !strings.Contains(stdout, "1 message: accept 1") {
		t.Errorf("check -: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestCheckJSONExplainAndOut: --json --explain keeps one JSON object per
// line with the explanation inside; --out writes only what would go
// upstream and lists the refused messages.
func TestCheckJSONExplainAndOut(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCheckT(t, "--json", "--explain", "--out", out, "-p", "../../policies/dangerous-attachments.yaml",
		"../../testdata/attacks/exe-attachment.eml", "../../testdata/benign/plain-text.eml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 JSON objects:\n%s", len(lines), stdout)
	}
	for _, l := range lines {
		var j map[string]any
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, l)
		}
		if ex, _ := j["explain"].(string); !strings.Contains(ex, "stage data:") {
			t.Errorf("%s: explain %q", j["file"], ex)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "testdata", "attacks", "exe-attachment.eml")); err == nil {
		t.Errorf("a rejected message was written to --out")
	}
	if _, err := os.Stat(filepath.Join(out, "testdata", "benign", "plain-text.eml")); err != nil {
		t.Errorf("the accepted message is not in --out: %v", err)
	}
	if !strings.Contains(stderr, "not written to "+out+" (refused, not sent upstream): ../../testdata/attacks/exe-attachment.eml (reject)") {
		t.Errorf("refused message not listed:\n%s", stderr)
	}
}

// TestRegexpEscapingAsDocumented: the two spellings of docs/policy.md
// "Quoting and backslashes" match a literal "[SPAM] ".
func TestRegexpEscapingAsDocumented(t *testing.T) {
	dir := t.TempDir()
	msg := writeT(t, filepath.Join(dir, "spam.eml"), "Subject: [SPAM] hi\r\nFrom: a@b.example\r\n\r\nx\r\n")
	for _, when := range []string{"'Subject matches `^\\[SPAM\\] `'", `'Subject matches "^\\[SPAM\\] "'`} {
		pol := writeT(t, filepath.Join(dir, "p.yaml"), "rules:\n  - name: spam\n    when: "+when+"\n    action: reject\n")
		if _, stdout, stderr := runCheckT(t, "-p", pol, msg); !strings.Contains(stdout, "spam.eml: reject [spam]") {
			t.Errorf("when: %s\n%s%s", when, stdout, stderr)
		}
	}
}

// TestGrammar: one thing is singular.
func TestGrammar(t *testing.T) {
	dir := t.TempDir()
	pol := writeT(t, filepath.Join(dir, "p.yaml"), "rules:\n  - name: r\n    when: 'false'\ntests:\n  - message: m.eml\n    expect: {verdict: accept}\n")
	writeT(t, filepath.Join(dir, "m.eml"), "Subject: x\r\n\r\nb\r\n")
	var out, errb strings.Builder
	runLint([]string{"-p", pol}, &out, &errb)
	runTest([]string{"-p", pol}, &out, &errb)
	_, cout, _ := runCheckT(t, "-p", pol, filepath.Join(dir, "m.eml"))
	all := out.String() + cout
	for _, want := range []string{"ok: 1 policy file: 1 rule\n", "1 test, 1 passed, 0 failed", "1 message: accept 1"} {
		if !strings.Contains(all, want) {
			t.Errorf("lacks %q:\n%s", want, all)
		}
	}
}
