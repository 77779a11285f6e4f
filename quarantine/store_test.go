package quarantine

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func save(t *testing.T, dir, body string, when time.Time) string {
	t.Helper()
	h := sha256.Sum256([]byte(body))
	sum := hex.EncodeToString(h[:])
	if err := Save(dir, strings.NewReader(body), sum, Record{Time: when, From: "a@x.test", Rcpts: []string{"b@y.test"}, Rule: "r"}); err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestFindListExpire(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-40 * 24 * time.Hour)
	a := save(t, dir, "Subject: a\r\n\r\na\r\n", old)
	save(t, dir, "Subject: a\r\n\r\na\r\n", old.Add(time.Second)) // a second event, one .eml
	b := save(t, dir, "Subject: b\r\n\r\nb\r\n", time.Now())
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600)
	msgs, err := List(dir)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("List: %d messages, %v", len(msgs), err)
	}
	if msgs[0].SHA256 != a || len(msgs[0].Events) != 2 || msgs[1].SHA256 != b {
		t.Fatalf("List order or events wrong: %+v", msgs)
	}
	for _, c := range []struct{ id, err string }{
		{a, ""}, {a[:8], ""}, {strings.ToUpper(a[:10]), ""},
		{a[:7], "too short"}, {"../../etc/passwd", "not a SHA-256"}, {"", "not a SHA-256"},
		{"0000000000", "no message"}, {a + "0", "not a SHA-256"},
	} {
		m, err := Find(dir, c.id)
		if c.err == "" && (err != nil || m.SHA256 != a) {
			t.Errorf("Find(%q): %v", c.id, err)
		}
		if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Find(%q): error %v, want %q", c.id, err, c.err)
		}
	}
	// An ambiguous prefix is refused: two hashes sharing 8 digits.
	fake := a[:8] + strings.Repeat("0", 56)
	os.WriteFile(filepath.Join(dir, fake+".eml"), []byte("x"), 0o600)
	if _, err := Find(dir, a[:8]); err == nil || !strings.Contains(err.Error(), "names 2 messages") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	os.Remove(filepath.Join(dir, fake+".eml"))

	gone, err := Expire(dir, 30*24*time.Hour, time.Now())
	if err != nil || len(gone) != 1 || gone[0].SHA256 != a {
		t.Fatalf("Expire: %v %v", gone, err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), a) {
			t.Errorf("expired message left %s", e.Name())
		}
	}
	if m, err := Find(dir, b); err != nil || len(m.Events) != 1 {
		t.Errorf("the recent message went too: %v", err)
	}
}
