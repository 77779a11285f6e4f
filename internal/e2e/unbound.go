package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Unbound is a private unbound serving local-zone/local-data records on a
// loopback port (docs/DEVELOPING.md, the lookup tests), the real DNS
// server of the lookup tests.
type Unbound struct {
	Addr string // 127.0.0.1:PORT, UDP and TCP
	Proc *Process
}

// StartUnbound serves records (zone-file lines such as
// `example.org. 300 IN TXT "v=spf1 -all"`; TXT strings are split at 255
// bytes here) in the static zones given: a name inside them that has no
// record answers NXDOMAIN. PTR records are written as local-data too.
func StartUnbound(t testing.TB, zones []string, records []string) *Unbound {
	t.Helper()
	bin := RequireTool(t, "unbound")
	dir := t.TempDir()
	port := FreePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  interface: 127.0.0.1@%d\n  port: %d\n  username: \"\"\n  chroot: \"\"\n  directory: %q\n", port, port, dir)
	b.WriteString("  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  pidfile: \"\"\n  module-config: \"iterator\"\n")
	b.WriteString("  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  num-threads: 1\n")
	for _, z := range zones {
		fmt.Fprintf(&b, "  local-zone: %q static\n", dns.Fqdn(z))
	}
	for _, r := range records {
		rr, err := dns.NewRR(splitTXT(r))
		if err != nil {
			t.Fatalf("unbound record %q: %v", r, err)
		}
		fmt.Fprintf(&b, "  local-data: '%s'\n", rr.String())
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := Start(t, dir, nil, bin, "-d", "-c", conf)
	u := &Unbound{Addr: fmt.Sprintf("127.0.0.1:%d", port), Proc: p}
	deadline := time.Now().Add(10 * time.Second)
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zones[0]), dns.TypeSOA)
	for {
		if _, _, err := c.Exchange(m, u.Addr); err == nil {
			return u
		}
		if ok, err := p.Exited(); ok {
			t.Fatalf("unbound exited: %v\n%s", err, p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound did not answer on %s\n%s", u.Addr, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// splitTXT splits the one quoted string of a TXT line in 255-byte strings.
func splitTXT(r string) string {
	i := strings.Index(r, " TXT \"")
	if i < 0 || !strings.HasSuffix(r, "\"") {
		return r
	}
	v := r[i+6 : len(r)-1]
	if strings.Contains(v, "\" \"") {
		return r
	}
	var parts []string
	for len(v) > 250 {
		parts = append(parts, `"`+v[:250]+`"`)
		v = v[250:]
	}
	parts = append(parts, `"`+v+`"`)
	return r[:i+5] + strings.Join(parts, " ")
}
