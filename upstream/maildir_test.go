package upstream

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"mailgate/config"
)

func readNew(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%s/tmp not empty", dir)
	}
	return out
}

func deliverTo(t *testing.T, url string, rcpts ...string) Reply {
	t.Helper()
	cfg := config.Default()
	cfg.Upstream, cfg.Hostname = url, "gate.example"
	up, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ci := Client{Addr: "192.0.2.7", Helo: "client.example", Proto: "ESMTP"}
	c, err := up.Open(ctx, ci)
	if err != nil {
		t.Fatal(err)
	}
	c.Mail(ctx, "alice@example.org", nil, ci)
	for _, r := range rcpts {
		c.Rcpt(ctx, r, nil)
	}
	rp, err := c.Data(ctx, strings.NewReader("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

var receivedRE = regexp.MustCompile(`^Return-Path: <alice@example\.org>\nDelivered-To: (\S+)\nReceived: from client\.example \(\[192\.0\.2\.7\]\) by gate\.example \(mailgate\) with ESMTP id \S+\n\tfor <(\S+)>; .+\nFrom: alice@example\.org\nTo: bob@example\.net\nSubject: hi\n\nbody\n$`)

// TestMaildirTwoRecipients: one file per recipient, each with its own
// Delivered-To (the Bcc recipient carol is not in To and still gets hers),
// the envelope sender in Return-Path, a Received field naming mailgate,
// LF line endings.
func TestMaildirTwoRecipients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	rp := deliverTo(t, "maildir:"+dir, "bob@example.net", "carol@example.net")
	if rp.Code != 250 {
		t.Fatalf("reply %v", rp)
	}
	files := readNew(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d files in new/, want 2 (one per recipient)", len(files))
	}
	seen := map[string]bool{}
	for _, f := range files {
		m := receivedRE.FindStringSubmatch(f)
		if m == nil || m[1] != m[2] {
			t.Fatalf("delivered file:\n%s", f)
		}
		seen[m[1]] = true
	}
	if !seen["bob@example.net"] || !seen["carol@example.net"] {
		t.Errorf("Delivered-To: %v", seen)
	}
	t.Logf("one of the files:\n%s", files[0])
}

// TestMaildirRcptTemplate: {rcpt} gives each recipient a Maildir of its
// own, named by the sanitised address: a hostile local part cannot leave
// the directory.
func TestMaildirRcptTemplate(t *testing.T) {
	base := t.TempDir()
	rp := deliverTo(t, "maildir:"+base+"/{rcpt}", "Bob@Example.net", "../../etc/x@example.net", "a\x01b/..@example.net")
	if rp.Code != 250 {
		t.Fatalf("reply %v", rp)
	}
	ents, _ := os.ReadDir(base)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if len(readNew(t, filepath.Join(base, e.Name()))) != 1 {
			t.Errorf("%s: want one file", e.Name())
		}
	}
	if got := strings.Join(names, " "); got != "_._.__etc_x@example.net a_b_._@example.net bob@example.net" {
		t.Errorf("maildirs %q", got)
	}
	if _, err := os.Stat(filepath.Join(base, "..", "etc")); err == nil {
		t.Errorf("a recipient escaped the directory")
	}
}

func TestSanitizeRcpt(t *testing.T) {
	for in, want := range map[string]string{
		"bob@example.net": "bob@example.net", "..": "_.", ".": "_", ".hidden@x": "_hidden@x", "a/b": "a_b",
		"": "_", "x\ny@z": "x_y@z", "a..b@c": "a._b@c",
	} {
		if got := SanitizeRcpt(in); got != want {
			t.Errorf("SanitizeRcpt(%q) = %q, want %q", in, got, want)
		}
	}
}
