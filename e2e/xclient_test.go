package e2e_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

// dialRawFrom is dialRaw from a chosen loopback address, so that a test
// client plays a remote one (outside the private Postfix's mynetworks).
func dialRawFrom(t *testing.T, local, addr string) *rawSession {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
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

// TestPostfixChecksSeeClientThroughXclient: in README's Set-up 1 Postfix
// evaluates its own restrictions on the client mailgate names by XCLIENT,
// not on mailgate (127.0.0.1, inside its mynetworks). A remote client may
// not relay to a foreign domain, in a second transaction of the same session
// neither, and a client Postfix's check_client_access lists is refused;
// mailgate relays Postfix's replies. With xclient: false the same relay
// attempt is accepted: the open relay that XFORWARD alone leaves.
func TestPostfixChecksSeeClientThroughXclient(t *testing.T) {
	s := startStack(t, "trusted_forwarders: []\n", "policies/default.yaml")

	c := dialRawFrom(t, e2e.OutsideClient, s.addr)
	c.send("EHLO client.test\r\n")
	c.expect("250")
	c.send("MAIL FROM:<alice@sender.test>\r\n")
	c.expect("250")
	c.send("RCPT TO:<victim@elsewhere.test>\r\n")
	relay := c.expect("454 4.7.1")
	if !strings.Contains(relay, "Relay access denied") {
		t.Errorf("relay attempt: %q, want Postfix's Relay access denied", relay)
	}
	t.Logf("relay attempt from %s through mailgate: %s", e2e.OutsideClient, relay)
	c.send("RCPT TO:<bob@example.net>\r\n")
	c.expect("250")
	c.send("DATA\r\n")
	c.expect("354")
	c.send(strings.ReplaceAll(string(cleanMessage("xclient1")), "\n.", "\n..") + ".\r\n")
	c.expect("250")
	// XCLIENT lasts for the upstream session: the second transaction is
	// still judged as the remote client.
	c.send("MAIL FROM:<alice@sender.test>\r\n")
	c.expect("250")
	c.send("RCPT TO:<victim@elsewhere.test>\r\n")
	c.expect("454 4.7.1")
	c.send("QUIT\r\n")
	c.expect("221")
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
	if !strings.Contains(string(got[0].Data), "["+e2e.OutsideClient+"]") {
		t.Errorf("Postfix's Received does not name the client %s:\n%.400s", e2e.OutsideClient, got[0].Data)
	}

	b := dialRawFrom(t, e2e.BlockedClient, s.addr)
	b.send("EHLO client.test\r\n")
	b.expect("250")
	b.send("MAIL FROM:<alice@sender.test>\r\n")
	b.expect("250")
	b.send("RCPT TO:<bob@example.net>\r\n")
	blocked := b.expect("554 5.7.1")
	if !strings.Contains(blocked, "Client host rejected") {
		t.Errorf("blocked client: %q, want Postfix's Client host rejected", blocked)
	}
	t.Logf("client %s listed in check_client_access: %s", e2e.BlockedClient, blocked)
	b.send("QUIT\r\n")
	b.expect("221")
	if got := s.pf.WaitDelivered("inbox", 2, settle); len(got) != 1 {
		t.Errorf("delivered %d, want only the first message", len(got))
	}
	if log := s.proc.Output(); strings.Contains(log, "does not offer XCLIENT") {
		t.Errorf("mailgate warned about XCLIENT although Postfix offers it:\n%s", log)
	}

	// The control: without XCLIENT Postfix sees 127.0.0.1 and relays.
	open := startMailgate(t, "smtp://"+s.pf.Addr, s.pf, "trusted_forwarders: []\nxclient: false\n", "policies/default.yaml")
	o := dialRawFrom(t, e2e.OutsideClient, open.addr)
	o.send("EHLO client.test\r\n")
	o.expect("250")
	o.send("MAIL FROM:<alice@sender.test>\r\n")
	o.expect("250")
	o.send("RCPT TO:<victim@elsewhere.test>\r\n")
	o.expect("250") // nothing is queued: no DATA follows
	o.send("RSET\r\n")
	o.expect("250")
	o.send("QUIT\r\n")
	o.expect("221")
}
