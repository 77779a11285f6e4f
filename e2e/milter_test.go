package e2e_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"mailgate/internal/e2e"
)

// milterStack is a private Postfix calling mailgate as its milter
// (README "Set-up 3"), mailgate running milter-only (`listen: []`).
type milterStack struct {
	pf     *e2e.Postfix
	milter string // mailgate's milter address
	dir    string
	proc   *e2e.Process
}

const milterPolicy = `rules:
  - name: archive-copy
    when: 'Envelope.From == "archived@example.com"'
    recipients: {add: [alice@example.net]}
  - name: hold-for-review
    when: 'Envelope.From == "held@example.com"'
    action: quarantine
`

func startMilterStack(t *testing.T) *milterStack {
	t.Helper()
	root := e2e.RepoRoot(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "local.yaml")
	if err := os.WriteFile(pol, []byte(milterPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := e2e.FreeAddr(t)
	var pols []string
	for _, p := range []string{"policies/default.yaml", "policies/office-macros.yaml", "policies/compliance-headers.yaml"} {
		pols = append(pols, fmt.Sprintf("%q", filepath.Join(root, p)))
	}
	pols = append(pols, fmt.Sprintf("%q", pol))
	cfg := fmt.Sprintf(`listen: []
milter_listen: [%q]
policies: [%s]
lists: {internal_domains: %q}
spool_dir: %s
quarantine_dir: %s
log: {format: json, level: info}
timeouts: {shutdown: 5s}
`, addr, strings.Join(pols, ", "), filepath.Join(root, "policies", "lists", "internal_domains.txt"),
		filepath.Join(dir, "spool"), filepath.Join(dir, "quarantine"))
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "spool"), 0o700)
	proc := e2e.Start(t, dir, nil, e2e.Binary(t), "serve", "-c", cfgPath)
	waitDial(t, proc, addr)
	pf := e2e.StartPostfixMilter(t, addr)
	return &milterStack{pf: pf, milter: addr, dir: dir, proc: proc}
}

// waitDial waits until addr accepts connections.
func waitDial(t *testing.T, p *e2e.Process, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		if done, _ := p.Exited(); done {
			t.Fatalf("mailgate exited:\n%s", p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s:\n%s", addr, p.Output())
}

// TestMilterPostfix runs mailgate as a real Postfix's milter: clean mail
// is delivered with the compliance headers, an executable is refused with
// the policy's reply, a macro document is stripped, a recipient is
// added, a quarantined message lands in Postfix's hold queue, and with
// mailgate stopped Postfix answers 4xx (milter_default_action = tempfail).
func TestMilterPostfix(t *testing.T) {
	s := startMilterStack(t)
	root := e2e.RepoRoot(t)
	read := func(rel string) []byte {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("clean mail gets the compliance headers", func(t *testing.T) {
		out, ok := swaksData(t, s.pf.Addr, "sender@example.com", "bob@example.net", read("testdata/benign/plain-text.eml"))
		if !ok || !strings.Contains(out, "<-  250 2.0.0 Ok: queued") {
			t.Fatalf("swaks:\n%s", out)
		}
		got := s.pf.WaitDelivered("inbox", 1, 15*time.Second)
		if len(got) != 1 {
			t.Fatalf("%d delivered\n%s", len(got), s.proc.Output())
		}
		m := got[0].Data
		for _, want := range []string{"\nX-External: yes\n", "\nX-Classification: EXTERNAL; sender-domain=example.com\n", "\nSubject: [EXT] "} {
			if !bytes.Contains(m, []byte(want)) {
				t.Errorf("delivered message lacks %q:\n%s", want, m)
			}
		}
		_, origBody, _ := bytes.Cut(lf(read("testdata/benign/plain-text.eml")), []byte("\n\n"))
		// (swaks ends the data with one more line break)
		if _, body, _ := bytes.Cut(m, []byte("\n\n")); !bytes.Equal(bytes.TrimRight(body, "\n"), bytes.TrimRight(origBody, "\n")) {
			t.Errorf("body changed:\n%q\nwant\n%q\nmessage:\n%s", body, origBody, m)
		}
	})

	t.Run("an executable is refused with the policy's reply", func(t *testing.T) {
		out, ok := swaksData(t, s.pf.Addr, "sender@example.com", "bob@example.net", read("testdata/attacks/exe-attachment.eml"))
		if ok || !strings.Contains(out, "<** 550 5.7.1 Executable content is not accepted") {
			t.Fatalf("swaks:\n%s", out)
		}
	})

	t.Run("a macro document is stripped", func(t *testing.T) {
		n := len(s.pf.Delivered("inbox"))
		out, ok := swaksData(t, s.pf.Addr, "sender@corp.example.org", "bob@example.net", read("testdata/attacks/docm-macros.eml"))
		if !ok {
			t.Fatalf("swaks:\n%s", out)
		}
		got := s.pf.WaitDelivered("inbox", n+1, 15*time.Second)
		if len(got) != n+1 {
			t.Fatalf("%d delivered", len(got))
		}
		m := got[n].Data
		if !bytes.Contains(m, []byte("\nX-Mailgate-Removed: macro documents\n")) || !bytes.Contains(m, []byte("was removed from this message")) ||
			bytes.Contains(m, []byte("UEsDB")) {
			t.Errorf("not stripped:\n%s", m)
		}
	})

	t.Run("a recipient is added", func(t *testing.T) {
		n := len(s.pf.Delivered("inbox"))
		out, ok := swaksData(t, s.pf.Addr, "archived@example.com", "bob@example.net", read("testdata/benign/plain-text.eml"))
		if !ok {
			t.Fatalf("swaks:\n%s", out)
		}
		if got := s.pf.WaitDelivered("alice", 1, 15*time.Second); len(got) != 1 {
			t.Errorf("alice got %d messages\n%s", len(got), s.pf.Maillog())
		}
		if got := s.pf.WaitDelivered("inbox", n+1, 15*time.Second); len(got) != n+1 {
			t.Errorf("bob got %d messages", len(got)-n)
		}
	})

	t.Run("a quarantined message is in Postfix's hold queue", func(t *testing.T) {
		out, ok := swaksData(t, s.pf.Addr, "held@example.com", "bob@example.net", read("testdata/benign/plain-text.eml"))
		if !ok {
			t.Fatalf("swaks:\n%s", out)
		}
		if held := s.pf.Held(); len(held) != 1 {
			t.Errorf("hold queue: %v\n%s", held, s.pf.Maillog())
		}
		ents, _ := os.ReadDir(filepath.Join(s.dir, "quarantine"))
		if len(ents) != 2 {
			t.Errorf("mailgate's quarantine holds %d files, want the message and its record", len(ents))
		}
	})

	t.Run("mailgate stopped: Postfix answers 4xx", func(t *testing.T) {
		s.proc.Signal(syscall.SIGTERM)
		if done, err := s.proc.Wait(10 * time.Second); !done || err != nil {
			t.Fatalf("mailgate did not exit cleanly: %v\n%s", err, s.proc.Output())
		}
		out, ok := swaksData(t, s.pf.Addr, "sender@example.com", "bob@example.net", read("testdata/benign/plain-text.eml"))
		if ok || !strings.Contains(out, "<** 451 4.7.1 ") {
			t.Fatalf("swaks:\n%s", out)
		}
	})
}

// TestMilterServeBothReload: one serve runs the SMTP listener and the
// milter listener from one file; SIGHUP reloads the policies of both, and
// SIGTERM stops both.
func TestMilterServeBothReload(t *testing.T) {
	sink := e2e.StartSink(t, false)
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.yaml")
	refuse := func(from string) string {
		return fmt.Sprintf("rules:\n  - name: refuse-sender\n    stage: mail\n    when: 'Envelope.From == %q'\n    action: reject\n    reply: \"550 5.7.1 Sender refused\"\n", from)
	}
	if err := os.WriteFile(pol, []byte(refuse("old@example.com")), 0o644); err != nil {
		t.Fatal(err)
	}
	smtpAddr, milterAddr := e2e.FreeAddr(t), e2e.FreeAddr(t)
	cfg := fmt.Sprintf("listen: [%q]\nmilter_listen: [%q]\nupstream: smtp://%s\npolicies: [%q]\nspool_dir: %q\nquarantine_dir: %q\n",
		smtpAddr, milterAddr, sink.Addr, pol, dir, filepath.Join(dir, "q"))
	cfgPath := filepath.Join(dir, "mailgate.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	proc := e2e.StartMailgate(t, dir, smtpAddr, "serve", "-c", cfgPath)
	waitDial(t, proc, milterAddr)

	mailAt := func(from string) (smtpRefused, milterRefused bool) {
		out, _ := swaks(t, smtpAddr, "--from", from, "--to", "bob@example.net", "--quit-after", "MAIL")
		smtpRefused = strings.Contains(out, "<** 550 5.7.1 Sender refused")
		cl := gomilter.NewClient("tcp", milterAddr)
		s, err := cl.Session(gomilter.NewMacroBag())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Conn("client.test", gomilter.FamilyInet, 1, "192.0.2.1")
		s.Helo("client.test")
		act, err := s.Mail(from, "")
		if err != nil {
			t.Fatal(err)
		}
		return smtpRefused, act.Type == gomilter.ActionRejectWithCode && act.SMTPReply == "550 5.7.1 Sender refused"
	}
	if a, b := mailAt("old@example.com"); !a || !b {
		t.Fatalf("before reload: old sender refused by SMTP %v, by milter %v\n%s", a, b, proc.Output())
	}
	os.WriteFile(pol, []byte(refuse("new@example.com")), 0o644)
	proc.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		a, b := mailAt("new@example.com")
		if a && b {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: new sender refused by SMTP %v, by milter %v\n%s", a, b, proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a, b := mailAt("old@example.com"); a || b {
		t.Errorf("after SIGHUP the old policy still applies: SMTP %v, milter %v", a, b)
	}
	proc.Signal(syscall.SIGTERM)
	if done, err := proc.Wait(15 * time.Second); !done || err != nil {
		t.Fatalf("serve did not exit cleanly on SIGTERM: %v\n%s", err, proc.Output())
	}
	for _, a := range []string{smtpAddr, milterAddr} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Errorf("%s still accepts after SIGTERM", a)
		}
	}
}
