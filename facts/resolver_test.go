package facts

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestResolverCache: answers are cached for their TTL, NXDOMAIN for the
// SOA's minimum; a timeout and a SERVFAIL are temporary errors, not cached.
func TestResolverCache(t *testing.T) {
	d := newTestDNS(t, `a.example. 60 IN TXT "hello"`, `short.example. 1 IN A 192.0.2.1`)
	r := d.resolver(t)
	clock := time.Unix(1000, 0)
	r.now = func() time.Time { return clock }
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		txt, err := r.LookupTXT(ctx, "A.example")
		if err != nil || len(txt) != 1 || txt[0] != "hello" {
			t.Fatalf("txt %q %v", txt, err)
		}
	}
	if n := d.queries.Load(); n != 1 {
		t.Errorf("server asked %d times, want 1 (cached)", n)
	}
	if _, err := r.LookupTXT(ctx, "nx.example"); !IsNotFound(err) {
		t.Errorf("nx: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "nx.example"); !IsNotFound(err) {
		t.Errorf("nx cached: %v", err)
	}
	if n := d.queries.Load(); n != 2 {
		t.Errorf("server asked %d times, want 2 (negative answer cached)", n)
	}
	clock = clock.Add(31 * time.Second) // past the SOA minimum (30s), within the TXT's 60s
	r.LookupTXT(ctx, "nx.example")
	r.LookupTXT(ctx, "a.example")
	if n := d.queries.Load(); n != 3 {
		t.Errorf("server asked %d times, want 3 (negative entry expired only)", n)
	}
	start := time.Now()
	if _, err := r.LookupTXT(ctx, "x.slow.test"); !IsTemporary(err) {
		t.Errorf("slow: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("timeout took %v", el)
	}
	if _, err := r.LookupTXT(ctx, "x.servfail.test"); !IsTemporary(err) {
		t.Errorf("servfail: %v", err)
	}
	st := r.Stats()
	if st.Timeouts != 1 || st.Failures != 1 || st.Hits != 4 || st.Queries != 9 {
		t.Errorf("stats %+v", st)
	}
}

// TestResolverBytes: the cache stays within its byte bound.
func TestResolverBytes(t *testing.T) {
	var recs []string
	for i := 0; i < 50; i++ {
		recs = append(recs, dns.Fqdn(string(rune('a'+i%26))+string(rune('a'+i/26))+".example")+` 300 IN TXT "0123456789012345678901234567890123456789"`)
	}
	d := newTestDNS(t, recs...)
	r, err := NewResolver(ResolverConfig{Servers: []string{d.addr}, CacheBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		r.LookupTXT(context.Background(), string(rune('a'+i%26))+string(rune('a'+i/26))+".example")
	}
	if r.bytes > 2000 || r.cache.Len() == 0 || r.cache.Len() >= 50 {
		t.Errorf("bytes %d, entries %d", r.bytes, r.cache.Len())
	}
}

// TestCheckClient: PTR and FCrDNS, a listed and an unlisted client, and a
// blocklist's error code (temperror, not a listing).
func TestCheckClient(t *testing.T) {
	d := newTestDNS(t,
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
		`11.2.0.192.in-addr.arpa. 300 IN PTR liar.example.org.`,
		`liar.example.org. 300 IN A 192.0.2.99`,
		`11.2.0.192.bl.example. 300 IN A 127.0.0.2`,
		`11.2.0.192.bl.example. 300 IN A 127.0.0.4`,
		`11.2.0.192.err.example. 300 IN A 127.255.255.254`,
		`11.2.0.192.odd.example. 300 IN A 10.0.0.1`,
	)
	r := d.resolver(t)
	zones := map[string]string{"local": "bl.example", "errs": "err.example", "odd": "odd.example", "dead": "servfail.test"}
	good := CheckClient(context.Background(), r, netip.MustParseAddr("192.0.2.10"), zones)
	if good.PTR != "mail.example.org" || !good.FCrDNS || len(good.DNSBL["local"]) != 0 {
		t.Errorf("good: %+v", good)
	}
	bad := CheckClient(context.Background(), r, netip.MustParseAddr("::ffff:192.0.2.11"), zones)
	if bad.PTR != "liar.example.org" || bad.FCrDNS {
		t.Errorf("bad ptr: %+v", bad)
	}
	if got := bad.DNSBL["local"]; len(got) != 2 || got[0] != "127.0.0.2" || got[1] != "127.0.0.4" {
		t.Errorf("listed: %q", got)
	}
	for _, n := range []string{"errs", "odd", "dead"} {
		if _, ok := bad.DNSBL[n]; ok {
			t.Errorf("%s: an error code or SERVFAIL counted as an answer: %q", n, bad.DNSBL[n])
		}
	}
	if len(bad.Errors) != 3 {
		t.Errorf("errors: %q", bad.Errors)
	}
	if got := dnsblName(netip.MustParseAddr("2001:db8::1"), "bl.example"); got != "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example." {
		t.Errorf("ipv6 name %s", got)
	}
}

// TestCheckSPF: pass, fail, softfail, none, and temperror when the
// server fails; HELO identity for the null sender.
func TestCheckSPF(t *testing.T) {
	d := newTestDNS(t,
		`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 include:inc.example.net -all"`,
		`inc.example.net. 300 IN TXT "v=spf1 ip4:198.51.100.7 -all"`,
		`soft.example. 300 IN TXT "v=spf1 ~all"`,
		`helo.example. 300 IN TXT "v=spf1 a -all"`,
		`helo.example. 300 IN A 203.0.113.5`,
	)
	r := d.resolver(t)
	ctx := context.Background()
	cases := []struct{ ip, helo, from, want, domain string }{
		{"192.0.2.10", "x", "a@example.org", "pass", "example.org"},
		{"198.51.100.7", "x", "a@example.org", "pass", "example.org"},
		{"203.0.113.9", "x", "a@example.org", "fail", "example.org"},
		{"203.0.113.9", "x", "a@soft.example", "softfail", "soft.example"},
		{"203.0.113.9", "x", "a@nothing.example", "none", "nothing.example"},
		{"203.0.113.9", "x", "a@x.servfail.test", "temperror", "x.servfail.test"},
		{"203.0.113.5", "helo.example", "", "pass", "helo.example"},
	}
	for _, c := range cases {
		got, dom := CheckSPF(ctx, r, netip.MustParseAddr(c.ip), c.helo, c.from)
		if got != c.want || dom != c.domain {
			t.Errorf("%s %s %q: %s %s, want %s %s", c.ip, c.helo, c.from, got, dom, c.want, c.domain)
		}
	}
}
