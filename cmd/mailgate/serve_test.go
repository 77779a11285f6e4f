package main

import (
	"bytes"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestServeUsageAndConfigErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runServe([]string{"--bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	errb.Reset()
	if code := runServe([]string{"extra"}, &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	os.WriteFile(cfg, []byte("upstream: smtp://127.0.0.1:25\nlimits:\n  recipient: 5\n"), 0o600)
	errb.Reset()
	if code := runServe([]string{"-c", cfg}, &out, &errb); code != 1 {
		t.Errorf("bad config: exit %d, want 1", code)
	}
	if want := cfg + ":3:3: limits.recipient: unknown key (did you mean recipients?)"; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	errb.Reset()
	if code := runServe([]string{"--upstream", "ftp://x", "--listen", "127.0.0.1:0"}, &out, &errb); code != 1 {
		t.Errorf("bad --upstream: exit %d, want 1", code)
	}
	errb.Reset()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - name: x\n    when: 'Nope'\n"), 0o600)
	if code := runServe([]string{"-p", bad, "--listen", "127.0.0.1:0"}, &out, &errb); code != 1 {
		t.Errorf("bad policy: exit %d, want 1", code)
	}
	if !strings.Contains(errb.String(), "bad.yaml:3:") {
		t.Errorf("policy error without position: %q", errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeSignals runs `mailgate serve` in-process with the embedded
// defaults: a message lands in the Maildir, SIGHUP reloads, SIGTERM stops
// with exit code 0.
func TestServeSignals(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the default Maildir is ./mailgate-mail/
	var out, errb syncBuffer
	code := make(chan int, 1)
	go func() { code <- runServe([]string{"--listen", "127.0.0.1:0"}, &out, &errb) }()
	re := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	var addr string
	for i := 0; i < 500 && addr == ""; i++ {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	if addr == "" {
		t.Fatalf("no listen address; stdout %q stderr %q", out.String(), errb.String())
	}
	if err := smtp.SendMail(addr, nil, "a@example.org", []string{"b@example.net"}, []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "mailgate-mail", "new"))
	if len(ents) != 1 {
		t.Fatalf("maildir new/ holds %d files", len(ents))
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for i := 0; i < 500 && !strings.Contains(errb.String(), "configuration reloaded"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(errb.String(), "configuration reloaded") {
		t.Errorf("no reload logged: %s", errb.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case got := <-code:
		if got != 0 {
			t.Errorf("exit %d after SIGTERM; stderr %s", got, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}
}
