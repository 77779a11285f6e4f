package proxy

import (
	"mailgate/config"
	"net/netip"
	"strings"
	"testing"
)

// trustLoopback makes the test client (127.0.0.1) a trusted forwarder,
// whatever DefaultConfig trusts.
func trustLoopback(cfg *config.Config) {
	cfg.TrustedForwarders = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
}

// TestForwardedAddrMustBeIP: a trusted forwarder's ADDR is an IP address
// (Postfix's IPV6: prefix and its [UNAVAILABLE]/[TEMPUNAVAIL] accepted);
// anything else is refused with 501 5.5.4 and logged, and changes nothing.
func TestForwardedAddrMustBeIP(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	trustLoopback(cfg)
	eng := &fakeEngine{}
	addr, _, lg := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO postfix.test", "250")
	for _, bad := range []string{"evil.example", "192.0.2.300", "1.2.3.4%eth0", "fe80::1%25eth0", "IPV6:", "IPV6:1.2.3", "192.0.2.7+20x"} {
		c.cmd("XFORWARD ADDR="+bad, "501 5.5.4")
		c.cmd("XCLIENT ADDR="+bad, "501 5.5.4")
	}
	if !strings.Contains(lg.String(), "not an IP address") {
		t.Error("refused ADDR not logged")
	}
	for _, good := range []string{"[UNAVAILABLE]", "[TEMPUNAVAIL]", "IPV6:2001:db8::1", "ipv6:2001:DB8::2"} {
		c.cmd("XFORWARD ADDR="+good, "250")
	}
	c.cmd("XFORWARD ADDR=192.0.2.7", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	if txs := up.transactions(); len(txs) != 1 || !strings.Contains(txs[0].Xfwd, "ADDR=192.0.2.7") {
		t.Fatalf("upstream XFORWARD %+v", txs)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	for _, f := range eng.seen {
		if f.Client.IP != "192.0.2.7" {
			t.Errorf("policy saw client IP %q", f.Client.IP)
		}
	}
}

// TestXclientForgetsEarlierXforward: XCLIENT names a new client, so an
// attribute it does not give is not kept from an earlier XFORWARD (a NAME
// the policies, the logs and the upstream would take for the new client's).
func TestXclientForgetsEarlierXforward(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	trustLoopback(cfg)
	eng := &fakeEngine{}
	addr, _, _ := startServer(t, cfg, eng)
	c := dialClient(t, addr)
	c.cmd("EHLO postfix.test", "250")
	c.cmd("XFORWARD NAME=trusted.example ADDR=192.0.2.7 PORT=4711 HELO=old.example", "250")
	c.cmd("XCLIENT ADDR=198.51.100.9", "220")
	c.cmd("EHLO postfix.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	txs := up.transactions()
	if len(txs) != 1 {
		t.Fatalf("upstream transactions %+v", txs)
	}
	x := txs[0].Xfwd
	if strings.Contains(x, "trusted.example") || strings.Contains(x, "old.example") || strings.Contains(x, "4711") ||
		!strings.Contains(x, "ADDR=198.51.100.9") || !strings.Contains(x, "NAME=[UNAVAILABLE]") {
		t.Errorf("upstream XFORWARD after XCLIENT %q: the earlier XFORWARD's attributes survived", x)
	}
	eng.mu.Lock()
	defer eng.mu.Unlock()
	for _, f := range eng.seen {
		if f.Client.IP != "198.51.100.9" || f.Client.Port == 4711 || f.Client.HELO == "old.example" {
			t.Errorf("policy saw client %+v", f.Client)
		}
	}
}
