package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// swaksTo sends one message with swaks and returns its transcript.
func swaksTo(t *testing.T, addr, rcpt, body string) (string, error) {
	t.Helper()
	swaks := RequireTool(t, "swaks")
	cmd := exec.Command(swaks, "--server", addr, "--from", "alice@sender.test", "--to", rcpt,
		"--helo", "client.test", "--header", "Subject: harness", "--body", body, "--timeout", "20")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPostfixDelivers(t *testing.T) {
	pf := StartPostfix(t)
	if out, err := swaksTo(t, pf.Addr, "bob@example.net", "hello from the harness"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got := pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(got))
	}
	if !bytes.Contains(got[0].Data, []byte("hello from the harness")) {
		t.Errorf("delivered message lacks the body:\n%s", got[0].Data)
	}
	out, err := swaksTo(t, pf.Addr, "nobody@example.net", "x")
	if err == nil || !strings.Contains(out, "550 5.1.1") {
		t.Errorf("unknown recipient: want Postfix's 550 5.1.1, got err=%v\n%s", err, out)
	}
}

func TestSinkDumps(t *testing.T) {
	s := StartSink(t, true)
	if out, err := swaksTo(t, s.Addr, "x@example.net", "sunk body"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || !bytes.Contains(msgs[0].Data, []byte("sunk body")) {
		t.Fatalf("sink dumped %d messages: %q", len(msgs), msgs)
	}
}

func TestBinaryHelp(t *testing.T) {
	out, err := exec.Command(Binary(t), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("mailgate -h: %v\n%s", err, out)
	}
	for _, c := range []string{"serve", "check", "lint", "test", "parse"} {
		if !strings.Contains(string(out), "\n  "+c+" ") {
			t.Errorf("mailgate -h does not list %q:\n%s", c, out)
		}
	}
}
