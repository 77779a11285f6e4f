package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// startUnbound starts a private unbound for the mailgate-auth target
// (docs/DEVELOPING.md, the lookup tests): smtp-source's sender domain
// authorises 127.0.0.1 by SPF and has a DMARC record, 127.0.0.1 has a PTR
// that resolves back, and the one blocklist lists nobody.
func startUnbound(e *env) (*proc, string, error) {
	port := freePort()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	dir := filepath.Join(e.work, "unbound")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	conf := fmt.Sprintf(`server:
  interface: 127.0.0.1@%d
  port: %d
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  do-daemonize: no
  use-syslog: no
  logfile: ""
  module-config: "iterator"
  do-ip6: no
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  local-zone: "example.org." static
  local-zone: "bl.bench.test." static
  local-zone: "127.in-addr.arpa." static
  local-zone: "bench.mailgate.test." static
  local-data: 'example.org. 300 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"'
  local-data: '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"'
  local-data: '1.0.0.127.in-addr.arpa. 300 IN PTR client.example.org.'
  local-data: 'client.example.org. 300 IN A 127.0.0.1'
`, port, port, dir)
	cf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	p, err := start("unbound", dir, nil, "/usr/sbin/unbound", "-d", "-c", cf)
	if err != nil {
		return nil, "", err
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		txt, err := r.LookupTXT(ctx, "example.org")
		cancel()
		if err == nil && len(txt) > 0 && strings.HasPrefix(txt[0], "v=spf1") {
			return p, addr, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", fmt.Errorf("unbound did not answer on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// authSections are the lookup sections of the mailgate-auth target:
// every authentication check and one blocklist, through unbound.
func authSections(dns string) string {
	return fmt.Sprintf("dns: {servers: [%q], timeout: 2s}\ndnsbl: {bench: bl.bench.test}\n"+
		"auth_checks: {spf: true, dkim: true, dmarc: true, arc: true, authserv_id: bench.mailgate.test}\n", dns)
}
