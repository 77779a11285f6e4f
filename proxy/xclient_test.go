package proxy

import (
	"strings"
	"testing"
)

// counterValue reads an unlabelled counter from the server's registry, as
// /metrics shows it.
func counterValue(t *testing.T, srv *Server, name string) float64 {
	t.Helper()
	mfs, err := srv.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// commandsWith returns the upstream's received commands starting with verb.
func commandsWith(up *fakeUpstream, verb string) []string {
	var out []string
	for _, c := range up.commands() {
		if strings.HasPrefix(c, verb) {
			out = append(out, c)
		}
	}
	return out
}

// TestUpstreamXclientOncePerIdentity: with an upstream offering XCLIENT
// (the default xclient: true), XCLIENT goes out once per upstream session,
// followed by an EHLO in the client's name, and no XFORWARD repeats it
// before each MAIL; a second transaction reuses it; a new EHLO name needs a
// new upstream session (Postfix takes no second XCLIENT).
func TestUpstreamXclientOncePerIdentity(t *testing.T) {
	up := newFakeUpstream(t)
	up.xclient = true
	cfg := testConfig(t, up.url())
	cfg.TrustedForwarders = nil
	addr, srv, lg := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	for i := 0; i < 2; i++ {
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
			t.Fatalf("final reply %d: %q", i, rp)
		}
	}
	c.cmd("RSET", "250")
	xc := commandsWith(up, "XCLIENT ")
	if len(xc) != 1 || !strings.Contains(xc[0], "ADDR=127.0.0.1") || !strings.Contains(xc[0], "HELO=client.test") ||
		!strings.Contains(xc[0], "NAME=[UNAVAILABLE]") {
		t.Fatalf("XCLIENT lines %q, want one with the client's attributes", xc)
	}
	if x := commandsWith(up, "XFORWARD"); len(x) != 0 {
		t.Errorf("XFORWARD sent after XCLIENT: %q", x)
	}
	cmds := up.commands()
	for i, l := range cmds {
		if strings.HasPrefix(l, "XCLIENT ") && (i+1 >= len(cmds) || cmds[i+1] != "EHLO client.test") {
			t.Errorf("XCLIENT not followed by EHLO in the client's name: %q", cmds)
		}
	}
	c.cmd("EHLO other.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply after a new EHLO: %q", rp)
	}
	if xc := commandsWith(up, "XCLIENT "); len(xc) != 2 || !strings.Contains(xc[1], "HELO=other.test") {
		t.Errorf("after a new EHLO name: XCLIENT lines %q", xc)
	}
	if n := len(up.transactions()); n != 3 {
		t.Errorf("upstream transactions %d, want 3", n)
	}
	if got := counterValue(t, srv, "mailgate_upstream_xclient_unavailable_total"); got != 0 {
		t.Errorf("xclient_unavailable = %v with XCLIENT offered", got)
	}
	if strings.Contains(lg.String(), "does not offer XCLIENT") {
		t.Error("warned although XCLIENT was offered")
	}
}

// TestUpstreamWithoutXclientWarns: xclient on (the default) but the
// upstream does not offer XCLIENT: mail still goes with XFORWARD, and the
// fall-back is logged once and counted per upstream session, since the
// upstream's own restrictions then see mailgate's address.
func TestUpstreamWithoutXclientWarns(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	addr, srv, lg := startServer(t, cfg, nil)
	for i := 0; i < 2; i++ {
		c := dialClient(t, addr)
		c.cmd("EHLO client.test", "250")
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
			t.Fatalf("final reply %q", rp)
		}
		c.cmd("QUIT", "221")
	}
	if got := counterValue(t, srv, "mailgate_upstream_xclient_unavailable_total"); got != 2 {
		t.Errorf("mailgate_upstream_xclient_unavailable_total = %v, want 2", got)
	}
	if n := strings.Count(lg.String(), "does not offer XCLIENT"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, lg.String())
	}
	if txs := up.transactions(); len(txs) != 2 || !strings.Contains(txs[1].Xfwd, "ADDR=127.0.0.1") {
		t.Errorf("upstream transactions %+v", txs)
	}

	// xclient: false is the operator's choice: never sent, no warning.
	up2 := newFakeUpstream(t)
	up2.xclient = true
	cfg2 := testConfig(t, up2.url())
	cfg2.XClient = false
	addr2, srv2, lg2 := startServer(t, cfg2, nil)
	c := dialClient(t, addr2)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	if xc := commandsWith(up2, "XCLIENT"); len(xc) != 0 {
		t.Errorf("XCLIENT sent with xclient: false: %q", xc)
	}
	if got := counterValue(t, srv2, "mailgate_upstream_xclient_unavailable_total"); got != 0 || strings.Contains(lg2.String(), "does not offer XCLIENT") {
		t.Errorf("xclient: false counted (%v) or warned", got)
	}
}
