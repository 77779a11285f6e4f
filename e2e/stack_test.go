// Package e2e_test drives the real mailgate binary with real SMTP clients
// (swaks, net/smtp, raw sockets) against a real upstream (a private Postfix,
// or smtp-sink) and checks what actually arrived.
package e2e_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

func TestMain(m *testing.M) {
	code := m.Run()
	e2e.Cleanup()
	os.Exit(code)
}

// stack is mailgate in front of a private Postfix.
type stack struct {
	pf   *e2e.Postfix
	addr string // mailgate's listen address
	dir  string // mailgate's working directory (config, spool, quarantine)
	proc *e2e.Process
}

// startStack starts Postfix and mailgate in front of it. extra is appended
// to the generated mailgate.yaml; policies are paths relative to the repo
// root, or inline YAML documents written to files when they contain a
// newline.
func startStack(t *testing.T, extra string, policies ...string) *stack {
	t.Helper()
	pf := e2e.StartPostfix(t)
	return startMailgate(t, "smtp://"+pf.Addr, pf, extra, policies...)
}

func startMailgate(t *testing.T, upstream string, pf *e2e.Postfix, extra string, policies ...string) *stack {
	t.Helper()
	root := e2e.RepoRoot(t)
	dir := t.TempDir()
	var pols []string
	for i, p := range policies {
		if strings.Contains(p, "\n") {
			f := filepath.Join(dir, fmt.Sprintf("policy%d.yaml", i))
			if err := os.WriteFile(f, []byte(p), 0o644); err != nil {
				t.Fatal(err)
			}
			pols = append(pols, fmt.Sprintf("%q", f))
			continue
		}
		pols = append(pols, fmt.Sprintf("%q", filepath.Join(root, p)))
	}
	addr := e2e.FreeAddr(t)
	cfg := fmt.Sprintf(`listen: [%q]
hostname: mailgate.test
upstream: %s
policies: [%s]
spool_dir: %s
quarantine_dir: %s
log: {format: json, level: info}
timeouts: {command: 30s, data_idle: 30s, data_total: 60s, upstream_connect: 5s, upstream: 30s}
%s`, addr, upstream, strings.Join(pols, ", "), filepath.Join(dir, "spool"), filepath.Join(dir, "quarantine"), extra)
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	os.MkdirAll(filepath.Join(dir, "quarantine"), 0o700)
	proc := e2e.StartMailgate(t, dir, addr, "serve", "-c", cfgPath)
	return &stack{pf: pf, addr: addr, dir: dir, proc: proc}
}

// spoolEmpty fails the test if mailgate left files in its spool.
func (s *stack) spoolEmpty(t *testing.T) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.dir, "spool"))
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("spool not empty after the transaction: %v", names)
	}
}

// swaks runs swaks against addr with args and returns its transcript and
// whether it exited 0.
func swaks(t *testing.T, addr string, args ...string) (string, bool) {
	t.Helper()
	bin := e2e.RequireTool(t, "swaks")
	all := append([]string{"--server", addr, "--helo", "client.test", "--timeout", "30"}, args...)
	out, err := exec.Command(bin, all...).CombinedOutput()
	return string(out), err == nil
}

// swaksData sends raw message bytes as DATA with swaks.
func swaksData(t *testing.T, addr, from, to string, msg []byte, extra ...string) (string, bool) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(f, msg, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--from", from, "--to", to, "--data", "@" + f}, extra...)
	return swaks(t, addr, args...)
}

// stripPostfixTrace removes the header fields Postfix's local delivery adds
// on top (Return-Path, X-Original-To, Delivered-To, Received) so the rest can be compared
// with what was sent.
func stripPostfixTrace(b []byte) []byte {
	for {
		line, rest, ok := bytes.Cut(b, []byte("\n"))
		if !ok {
			return b
		}
		name := strings.ToLower(string(line))
		if strings.HasPrefix(name, "return-path:") || strings.HasPrefix(name, "x-original-to:") || strings.HasPrefix(name, "delivered-to:") || strings.HasPrefix(name, "received:") {
			b = rest
			// continuation lines of a folded field
			for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
				_, b, _ = bytes.Cut(b, []byte("\n"))
			}
			continue
		}
		return b
	}
}

// lf converts CRLF to LF (Postfix stores Maildir files with LF).
func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// rawSession is a plain TCP SMTP client for scripted dialogues.
type rawSession struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := &rawSession{t: t, c: c, br: bufio.NewReader(c)}
	if r := s.reply(); !strings.HasPrefix(r, "220") {
		t.Fatalf("banner: %q", r)
	}
	return s
}

func (s *rawSession) send(data string) {
	s.t.Helper()
	s.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.c.Write([]byte(data)); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (s *rawSession) reply() string {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("reading reply: %v (got %q)", err, line)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

// expect reads a reply and fails unless it starts with prefix.
func (s *rawSession) expect(prefix string) string {
	s.t.Helper()
	r := s.reply()
	if !strings.HasPrefix(r, prefix) {
		s.t.Fatalf("got reply %q, want %q...", r, prefix)
	}
	return r
}
