package facts

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailgate/rules"
)

// TestColdLookupsConcurrent: with a server that answers in 100 ms and
// cold caches, the client's lookups (PTR then A, and four blocklists)
// take the longest chain (two answers), not the sum (six). The slow
// server keeps the margin above a loaded machine's scheduling noise.
func TestColdLookupsConcurrent(t *testing.T) {
	d := newTestDNS(t,
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
		`10.2.0.192.bl1.example. 300 IN A 127.0.0.2`,
	)
	d.delay.Store(int64(100 * time.Millisecond))
	r, _ := NewResolver(ResolverConfig{Servers: []string{d.addr}, Timeout: 2 * time.Second})
	zones := map[string]string{"a": "bl1.example", "b": "bl2.example", "c": "bl3.example", "d": "bl4.example"}
	start := time.Now()
	res := CheckClient(context.Background(), r, netip.MustParseAddr("192.0.2.10"), zones)
	el := time.Since(start)
	t.Logf("cold client lookups: %v (chain of 2 answers = 200 ms; one after another: 600 ms)", el)
	if !res.FCrDNS || len(res.DNSBL["a"]) != 1 {
		t.Fatalf("%+v", res)
	}
	if el >= 450*time.Millisecond {
		t.Errorf("client lookups took %v: the blocklists did not run beside PTR→A", el)
	}
}

// BenchmarkWarmLookups is what the lookups add to one small message when
// the caches are warm: client (PTR, FCrDNS, one DNSBL), SPF, DKIM (one
// RSA signature), DMARC and ARC, from connect to the data-stage facts.
func BenchmarkWarmLookups(b *testing.B) {
	key := newTestKey(b, false)
	d := newTestDNS(&testing.T{},
		txtRR("rs._domainkey.example.org", key.record),
		txtRR("_dmarc.example.org", "v=DMARC1; p=reject"),
		txtRR("example.org", "v=spf1 ip4:192.0.2.0/24 -all"),
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
	)
	r, _ := NewResolver(ResolverConfig{Servers: []string{d.addr}})
	signed, err := pydkim(b, crlf(testMsg), "sign", key.file, "rs", "example.org", "rsa-sha256")
	if err != nil {
		b.Fatal(err)
	}
	c := NewChecker(Config{Resolver: r, DNSBL: map[string]string{"zen": "bl.example"}, PTR: true, SPF: true, DKIM: true, DMARC: true, ARC: true}, NeedsOf(nil))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := c.New(context.Background())
		l.StartClient(netip.MustParseAddr("192.0.2.10"))
		l.StartSPF(netip.MustParseAddr("192.0.2.10"), "mail.example.org", "alice@example.org")
		mc := l.Message()
		mc.Write(signed)
		f := &rules.Facts{Client: rules.Client{IP: "192.0.2.10", HELO: "mail.example.org"}, Envelope: rules.Envelope{From: "alice@example.org"}}
		l.Enrich(rules.StageData, f)
		if f.Auth.DMARC != "pass" {
			b.Fatalf("%+v", f.Auth)
		}
	}
}

// BenchmarkDKIM1MB streams a 1 MB signed message through the checker in
// 64 KiB writes: one pass over the bytes, no second read.
func BenchmarkDKIM1MB(b *testing.B) {
	key := newTestKey(b, false)
	d := newTestDNS(b, txtRR("rs._domainkey.example.org", key.record))
	r, _ := NewResolver(ResolverConfig{Servers: []string{d.addr}})
	body := strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\n", 1<<20/76)
	signed, err := pydkim(b, crlf(strings.Replace(testMsg, "Hello Bob,", body, 1)), "sign", key.file, "rs", "example.org", "rsa-sha256")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(signed)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mc := NewMessageChecker(context.Background(), r, true, true)
		rd := bytes.NewReader(signed)
		buf := make([]byte, 64<<10)
		for {
			n, err := rd.Read(buf)
			if n > 0 {
				mc.Write(buf[:n])
			}
			if err != nil {
				break
			}
		}
		if res := mc.Close(); len(res.DKIM) != 1 || res.DKIM[0].Result != "pass" {
			b.Fatalf("%+v", res)
		}
	}
}

// TestColdTransactionConcurrent: a whole transaction with cold caches and
// a server answering in 100 ms (PTR→A, one DNSBL, SPF with an include,
// the DKIM key, DMARC) adds about its longest chain of dependent lookups
// (two answers), not the sum of them (seven answers, 700 ms).
func TestColdTransactionConcurrent(t *testing.T) {
	key := newTestKey(t, false)
	d := newTestDNS(t,
		txtRR("rs._domainkey.example.org", key.record),
		txtRR("_dmarc.example.org", "v=DMARC1; p=reject"),
		txtRR("example.org", "v=spf1 include:spf.example.net -all"),
		txtRR("spf.example.net", "v=spf1 ip4:192.0.2.0/24 -all"),
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
	)
	signed, err := pydkim(t, crlf(testMsg), "sign", key.file, "rs", "example.org", "rsa-sha256")
	if err != nil {
		t.Fatal(err)
	}
	d.delay.Store(int64(100 * time.Millisecond))
	r, _ := NewResolver(ResolverConfig{Servers: []string{d.addr}, Timeout: 2 * time.Second})
	c := NewChecker(Config{Resolver: r, DNSBL: map[string]string{"zen": "bl.example"}, PTR: true, SPF: true, DKIM: true, DMARC: true, ARC: true}, NeedsOf(nil))
	ip := netip.MustParseAddr("192.0.2.10")
	start := time.Now()
	l := c.New(context.Background())
	l.StartClient(ip)                                       // connect
	l.StartSPF(ip, "mail.example.org", "alice@example.org") // MAIL
	mc := l.Message()                                       // DATA: the message streams in
	mc.Write(signed)
	f := &rules.Facts{Client: rules.Client{IP: ip.String(), HELO: "mail.example.org"}, Envelope: rules.Envelope{From: "alice@example.org"}}
	l.Enrich(rules.StageData, f)
	el := time.Since(start)
	t.Logf("cold transaction, every lookup: %v (longest chain: 2 answers = 200 ms; all of them one after another: 700 ms)", el)
	if f.Auth.DMARC != "pass" || f.Auth.SPF != "pass" || !f.Client.FCrDNS {
		t.Fatalf("%+v %+v", f.Auth, f.Client)
	}
	if el >= 500*time.Millisecond {
		t.Errorf("the lookups took %v: they did not run concurrently", el)
	}
}
