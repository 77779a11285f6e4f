package e2e_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuarantineRoundTrip: a message held by a quarantine policy is listed
// by `mailgate quarantine list`, released through the private Postfix with
// its original envelope, and arrives there once, byte-identical.
func TestQuarantineRoundTrip(t *testing.T) {
	s := startStack(t, "", `rules:
  - name: hold-for-review
    when: 'Subject contains "review me"'
    action: quarantine
`)
	cfg := filepath.Join(s.dir, "mailgate.yaml")
	msg := crlf(
		"From: Alice <alice@sender.test>",
		"To: Bob <bob@example.net>",
		"Subject: please review me",
		"Date: Sun, 22 Nov 2026 10:00:00 +0000",
		"Message-ID: <held1@sender.test>",
		"",
		"Hello Bob,",
		".a dot line",
		"",
	)
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	if got := s.pf.WaitDelivered("inbox", 1, settle); len(got) != 0 {
		t.Fatalf("a quarantined message was delivered:\n%s", got[0].Data)
	}

	out, errs, code := runMailgate(t, s.dir, "quarantine", "list", "-c", cfg)
	if code != 0 {
		t.Fatalf("quarantine list: exit %d\n%s", code, errs)
	}
	t.Logf("quarantine list:\n%s", out)
	for _, want := range []string{"alice@sender.test", "bob@example.net", "please review me", "hold-for-review", "1 message held"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	jout, _, _ := runMailgate(t, s.dir, "quarantine", "list", "--json", "-c", cfg)
	var row struct {
		SHA256 string   `json:"sha256"`
		Rcpts  []string `json:"rcpts"`
		Size   int64    `json:"size"`
	}
	if err := json.Unmarshal([]byte(jout), &row); err != nil || len(row.SHA256) != 64 {
		t.Fatalf("list --json: %v\n%s", err, jout)
	}
	if !strings.Contains(out, row.SHA256) {
		t.Errorf("the table does not show the full hash %s", row.SHA256)
	}
	if row.Size != int64(len(msg)) {
		t.Errorf("size %d, want %d", row.Size, len(msg))
	}

	// Too short a prefix is refused; 8 digits are enough.
	if _, errs, code := runMailgate(t, s.dir, "quarantine", "release", "-c", cfg, row.SHA256[:7]); code == 0 || !strings.Contains(errs, "too short") {
		t.Errorf("release with a 7-digit prefix: exit %d, %s", code, errs)
	}
	if _, errs, code := runMailgate(t, s.dir, "quarantine", "release", "-c", cfg, "../../etc"); code == 0 || !strings.Contains(errs, "not a SHA-256") {
		t.Errorf("release ../../etc: exit %d, %s", code, errs)
	}
	show, errs, code := runMailgate(t, s.dir, "quarantine", "show", "-c", cfg, row.SHA256[:8])
	if code != 0 || !strings.Contains(show, `"rule": "hold-for-review"`) || !strings.Contains(show, "Subject: please review me") {
		t.Errorf("show: exit %d\n%s\n%s", code, show, errs)
	}

	rout, errs, code := runMailgate(t, s.dir, "quarantine", "release", "-c", cfg, row.SHA256[:8])
	t.Logf("quarantine release: %s%s", rout, errs)
	if code != 0 || !strings.Contains(rout, "released "+row.SHA256+" to bob@example.net: 250") {
		t.Fatalf("release: exit %d\n%s\n%s", code, rout, errs)
	}
	if !strings.Contains(errs, "quarantine release") {
		t.Errorf("the release is not logged:\n%s", errs)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("after release, delivered %d, want 1", len(got))
	}
	if body := stripPostfixTrace(got[0].Data); !bytes.Equal(body, lf(msg)) {
		t.Errorf("released message differs from the original\n--- sent\n%s\n--- arrived\n%s", lf(msg), body)
	}
	if !bytes.Contains(got[0].Data, []byte("Return-Path: <alice@sender.test>")) {
		t.Errorf("released without the original sender:\n%s", got[0].Data)
	}
	time.Sleep(settle)
	if got := s.pf.Delivered("inbox"); len(got) != 1 {
		t.Errorf("delivered %d times, want once", len(got))
	}
	// The release is recorded beside the event.
	ents, _ := os.ReadDir(filepath.Join(s.dir, "quarantine"))
	var rels int
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".release.json") {
			rels++
		}
	}
	if rels != 1 {
		t.Errorf("%d release records, want 1", rels)
	}
	jout, _, _ = runMailgate(t, s.dir, "quarantine", "list", "--json", "-c", cfg)
	if !strings.Contains(jout, `"releases":[{`) {
		t.Errorf("list --json does not show the release: %s", jout)
	}
	// delete removes it.
	if _, errs, code := runMailgate(t, s.dir, "quarantine", "delete", "-c", cfg, row.SHA256); code != 0 {
		t.Fatalf("delete: %s", errs)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dir, "quarantine")); len(ents) != 0 {
		t.Errorf("after delete, %d files remain", len(ents))
	}
}

// TestTransactionLineMatchesPostfix: mailgate's transaction line names
// the Message-ID and Postfix's queue id, and Postfix's own log has that
// queue id with message-id= of the same message.
func TestTransactionLineMatchesPostfix(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, cleanMessage("corr1")); err != nil {
		t.Fatalf("send: %v", err)
	}
	s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	var line map[string]any
	for i := 0; i < 100 && line == nil; i++ {
		for _, r := range logRecords(s.proc.Output()) {
			if r["msg"] == "transaction" {
				line = r
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if line == nil {
		t.Fatalf("no transaction line:\n%s", s.proc.Output())
	}
	js, _ := json.Marshal(line)
	t.Logf("transaction line: %s", js)
	qid, _ := line["queue_id"].(string)
	if line["message_id"] != "<corr1@sender.test>" || qid == "" {
		t.Fatalf("message_id %v queue_id %v", line["message_id"], line["queue_id"])
	}
	want := qid + ": message-id=<corr1@sender.test>"
	for i := 0; i < 100 && !strings.Contains(s.pf.Maillog(), want); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(s.pf.Maillog(), want) {
		t.Errorf("Postfix's log lacks %q:\n%s", want, s.pf.Maillog())
	}
}
