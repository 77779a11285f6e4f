package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// runCheckT runs `mailgate check args...` in-process.
func runCheckT(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runCheck(args, &out, &errb)
	return code, out.String(), errb.String()
}

func decodeLines(t *testing.T, s string) []checkJSON {
	t.Helper()
	var out []checkJSON
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var j checkJSON
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, j)
	}
	return out
}

func emlFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	return m
}

// TestCheckDangerousAttachments is the acceptance check:
// `mailgate check --json -p policies/dangerous-attachments.yaml
// testdata/attacks testdata/benign` rejects every attack and accepts every
// benign message unchanged.
func TestCheckDangerousAttachments(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCheckT(t, "--json", "--out", out, "-p", "../../policies/dangerous-attachments.yaml",
		"../../testdata/attacks", "../../testdata/benign")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	got := map[string]checkJSON{}
	for _, j := range decodeLines(t, stdout) {
		got[filepath.ToSlash(j.File)] = j
	}
	attacks, benign := emlFiles(t, "../../testdata/attacks"), emlFiles(t, "../../testdata/benign")
	if len(got) != len(attacks)+len(benign) {
		t.Errorf("%d results for %d fixtures", len(got), len(attacks)+len(benign))
	}
	for _, f := range attacks {
		j, ok := got[filepath.ToSlash(f)]
		switch {
		case !ok:
			t.Errorf("%s: no result", f)
		case j.Verdict != "reject" || len(j.Rules) == 0 || !strings.HasPrefix(j.Reply, "5"):
			t.Errorf("%s: verdict %s %q rules %v, want a reject", f, j.Verdict, j.Reply, j.Rules)
		}
	}
	for _, f := range benign {
		j, ok := got[filepath.ToSlash(f)]
		if !ok {
			t.Errorf("%s: no result", f)
			continue
		}
		if j.Verdict != "accept" || len(j.Rules) != 0 || len(j.Stripped) != 0 || len(j.HeadersAdded) != 0 || j.Reply != "" {
			t.Errorf("%s: verdict %s rules %v stripped %v headers %v, want accept unchanged", f, j.Verdict, j.Rules, j.Stripped, j.HeadersAdded)
		}
		orig, _ := os.ReadFile(f)
		written, err := os.ReadFile(filepath.Join(out, outRel(f)))
		if err != nil || !bytes.Equal(orig, written) {
			t.Errorf("%s: --out copy differs from the original (err %v)", f, err)
		}
	}
	// The hit table goes to stderr with --json, and names every rule.
	total := strconv.Itoa(len(attacks)+len(benign)) + " messages"
	for _, r := range []string{"executable-content", "dangerous-names", "encrypted-archive", total} {
		if !strings.Contains(stderr, r) {
			t.Errorf("hit table lacks %q:\n%s", r, stderr)
		}
	}
}

// TestCheckJSONShape checks one object field by field against docs/DESIGN.md.
func TestCheckJSONShape(t *testing.T) {
	code, stdout, stderr := runCheckT(t, "--json", "-p", "../../policies/dangerous-attachments.yaml", "../../testdata/attacks/exe-in-zip.eml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(stdout), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"file", "verdict", "reply", "rules", "score", "tags", "stripped", "headers_added", "monitor", "defects", "parts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, stdout)
		}
	}
	j := decodeLines(t, stdout)[0]
	if j.Verdict != "reject" || j.Reply != "550 5.7.1 Executable content is not accepted" || j.Rules[0] != "executable-content" || j.Tags[0] != "executable" {
		t.Errorf("got %+v", j)
	}
	var zip *chkPartJSON
	for i := range j.Parts {
		if j.Parts[i].Filename == "setup.zip" {
			zip = &j.Parts[i]
		}
	}
	if zip == nil || zip.Path != "2" || !zip.IsAttachment || zip.Ext != "zip" || len(zip.SHA256) != 64 || len(zip.Archive) != 2 {
		t.Fatalf("zip part: %+v", zip)
	}
	if a := zip.Archive[1]; a.Name != "setup.exe" || !a.Executable {
		t.Errorf("archive entry: %+v", a)
	}
}

// TestCheckRewrites runs office-macros with --out: the macro document is
// replaced by a notice, everything else is byte-identical and re-parses.
func TestCheckRewrites(t *testing.T) {
	out := t.TempDir()
	src := "../../testdata/attacks/docm-macros.eml"
	code, stdout, stderr := runCheckT(t, "--json", "--out", out, "-p", "../../policies/office-macros.yaml", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j := decodeLines(t, stdout)[0]
	if j.Verdict != "accept" || len(j.Stripped) != 1 || j.Stripped[0] != "2" || j.HeadersAdded["X-Mailgate-Removed"] != "macro documents" {
		t.Fatalf("got %+v", j)
	}
	orig, _ := os.ReadFile(src)
	rewritten, err := os.ReadFile(filepath.Join(out, outRel(src)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rewritten, []byte("X-Mailgate-Removed: macro documents\r\n")) {
		t.Errorf("added header not at the top:\n%.200s", rewritten)
	}
	before, _ := mimeparse.Parse(bytes.NewReader(orig), mimeparse.DefaultLimits())
	after, _ := mimeparse.Parse(bytes.NewReader(rewritten), mimeparse.DefaultLimits())
	if len(before.Parts) != len(after.Parts) {
		t.Fatalf("parts: %d before, %d after", len(before.Parts), len(after.Parts))
	}
	for i, p := range after.Parts {
		q := before.Parts[i]
		if p.Path == "2" {
			if p.ContentType != "text/plain" || p.Macros || !strings.Contains(string(rewritten[p.BodyOffset:p.EndOffset]), "report.docx") {
				t.Errorf("stripped part: %s %q", p.ContentType, rewritten[p.BodyOffset:p.EndOffset])
			}
			continue
		}
		if p.SHA256 != q.SHA256 || p.ContentType != q.ContentType {
			t.Errorf("part %s changed", p.Path)
		}
	}
	if len(after.Defects) != 0 {
		t.Errorf("rewritten message has defects %v", after.Defects)
	}
}

func TestCheckMboxAndMaildir(t *testing.T) {
	dir := t.TempDir()
	a, _ := os.ReadFile("../../testdata/attacks/exe-attachment.eml")
	b, _ := os.ReadFile("../../testdata/benign/plain-text.eml")
	mbox := "From sender@example.com Fri Jan  2 03:04:05 2026\n" + string(a) + "\nFrom x@example.com Fri Jan  2 03:04:06 2026\n" + string(b) + "\n"
	os.WriteFile(filepath.Join(dir, "box.mbox"), []byte(mbox), 0o644)
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(md, sub), 0o755)
	}
	os.WriteFile(filepath.Join(md, "cur", "1.host:2,S"), a, 0o644)
	os.WriteFile(filepath.Join(md, "new", "2.host"), b, 0o644)
	os.WriteFile(filepath.Join(md, "tmp", "3.host"), a, 0o644) // in delivery: skipped
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not mail"), 0o644)
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("# Subject: not mail either\nFrom: nobody\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "policy.yaml"), []byte("rules:\n  - name: x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "saved.msg"), b, 0o644) // a message without .eml

	code, stdout, stderr := runCheckT(t, "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := map[string]string{}
	for _, j := range decodeLines(t, stdout) {
		rel, _ := filepath.Rel(dir, j.File)
		got[filepath.ToSlash(rel)] = j.Verdict
	}
	want := map[string]string{"box.mbox:1": "reject", "box.mbox:2": "accept", "Maildir/cur/1.host:2,S": "reject", "Maildir/new/2.host": "accept",
		"saved.msg": "accept"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestSplitMbox(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"one", "From a\nX: 1\n\nbody\n", []string{"X: 1\n\nbody\n"}},
		{"two", "From a\nX: 1\n\nb1\n\nFrom b\nX: 2\n\nb2\n", []string{"X: 1\n\nb1\n", "X: 2\n\nb2\n"}},
		{"from-in-body-needs-blank-line", "From a\nX: 1\n\nline\nFrom here on\n", []string{"X: 1\n\nline\nFrom here on\n"}},
		{"quoted-from-kept", "From a\nX: 1\n\n>From b\n", []string{"X: 1\n\n>From b\n"}},
		{"crlf", "From a\r\nX: 1\r\n\r\nb\r\n\r\nFrom b\r\nX: 2\r\n\r\nc\r\n", []string{"X: 1\r\n\r\nb\r\n", "X: 2\r\n\r\nc\r\n"}},
		{"blank-lines-kept-inside", "From a\nX: 1\n\n\n\nb\n", []string{"X: 1\n\n\n\nb\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := chkSplitMbox(bufio.NewReader(strings.NewReader(tc.in)), func(n int, msg []byte) {
				if n != len(got)+1 {
					t.Errorf("message numbered %d, want %d", n, len(got)+1)
				}
				got = append(got, string(msg))
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckUsageAndErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no-path", nil, 2, "no PATH"},
		{"c-and-p", []string{"-c", "x.yaml", "-p", "y.yaml", "a.eml"}, 2, "exclude"},
		{"bad-list-flag", []string{"-l", "nofile", "a.eml"}, 2, "NAME=FILE"},
		{"missing-list", []string{"-p", "../../policies/compliance-headers.yaml", "../../testdata/benign/plain-text.eml"}, 1, "internal_domains"},
		{"bad-flag", []string{"--nope", "a.eml"}, 2, "nope"},
		{"missing-file", []string{"does-not-exist.eml"}, 1, "does-not-exist.eml"},
		{"bad-policy", []string{"-p", "does-not-exist.yaml", "../../testdata/benign/plain-text.eml"}, 1, "does-not-exist.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCheckT(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
	// An unreadable file among readable ones: the others are still checked.
	code, stdout, _ := runCheckT(t, "../../testdata/benign/plain-text.eml", "nope.eml")
	if code != 1 || !strings.Contains(stdout, "plain-text.eml: accept") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

// TestCheckTextAndExplain covers the default pack (no -p), the text report,
// the hit table and --explain.
func TestCheckTextAndExplain(t *testing.T) {
	code, stdout, stderr := runCheckT(t, "--explain", "../../testdata/attacks/exe-as-pdf.eml", "../../testdata/benign/pdf-attachment.eml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"exe-as-pdf.eml: reject [default-executable-content] 550 5.7.1",
		"pdf-attachment.eml: accept",
		"default-executable-content   MATCH → reject",
		"default-fail-closed-limits   no match",
		"default-executable-names     not reached (default-executable-content decided)",
		"when:  any(Attachments, .Executable",
		`filename="invoice.pdf" ext="pdf" detected="application/vnd.microsoft.portable-executable" executable=true`,
		"2 messages: accept 1, reject 1",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// TestCheckRateAndGreylistPerMessage: a back-test judges each message as
// if it arrived alone, so a per-client rate limit does not fire because
// check reads 70 messages in a blink, and a greylist rule defers every
// suspicious message, not only the first.
func TestCheckRateAndGreylistPerMessage(t *testing.T) {
	dir := t.TempDir()
	plain, _ := os.ReadFile("../../testdata/benign/plain-text.eml")
	odd, _ := os.ReadFile("../../testdata/packs/no-message-id.eml")
	for i := 0; i < 70; i++ {
		os.WriteFile(filepath.Join(dir, "p"+strconv.Itoa(i)+".eml"), plain, 0o644)
	}
	for i := 0; i < 3; i++ {
		os.WriteFile(filepath.Join(dir, "s"+strconv.Itoa(i)+".eml"), odd, 0o644)
	}
	code, stdout, stderr := runCheckT(t, "--json", "-p", "../../policies/spam-basics.yaml", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	n := 0
	for _, j := range decodeLines(t, stdout) {
		n++
		base := filepath.Base(j.File)
		switch {
		case strings.HasPrefix(base, "p") && j.Verdict != "accept":
			t.Errorf("%s: %s %v, want accept", base, j.Verdict, j.Rules)
		case strings.HasPrefix(base, "s") && (j.Verdict != "tempfail" || !chkContains(j.Rules, "greylist-suspicious")):
			t.Errorf("%s: %s %v, want a greylist deferral", base, j.Verdict, j.Rules)
		}
	}
	if n != 73 {
		t.Errorf("%d results, want 73", n)
	}
}

// TestCheckLists: -l gives -p policies their lists (compliance-headers
// needs internal_domains).
func TestCheckLists(t *testing.T) {
	code, stdout, stderr := runCheckT(t, "--json", "-p", "../../policies/compliance-headers.yaml",
		"-l", "internal_domains=../../policies/lists/internal_domains.txt", "--from", "alice@corp.example.org",
		"../../testdata/packs/internal-route.eml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j := decodeLines(t, stdout)[0]
	if j.Verdict != "accept" || j.HeadersAdded["X-Classification"] != "INTERNAL; sender-domain=corp.example.org" || chkContains(j.Tags, "external") {
		t.Errorf("got %+v", j)
	}
}

// TestOutRel: --out keeps the path as given, inside DIR.
func TestOutRel(t *testing.T) {
	for in, want := range map[string]string{
		"a.eml": "a.eml", "in/x/a.eml": "in/x/a.eml", "../../testdata/b.eml": "testdata/b.eml",
		"/var/mail/c.eml": "var/mail/c.eml", "./d/../e.eml": "e.eml", "/": ".",
	} {
		if got := outRel(in); got != want {
			t.Errorf("outRel(%q) = %q, want %q", in, got, want)
		}
	}
}
