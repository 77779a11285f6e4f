package facts

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"mailgate/rules"
)

// txtRR is a TXT record in zone-file syntax, split in 255-byte strings.
func txtRR(name, v string) string {
	var parts []string
	for len(v) > 200 {
		parts = append(parts, `"`+v[:200]+`"`)
		v = v[200:]
	}
	parts = append(parts, `"`+v+`"`)
	return name + ". 300 IN TXT " + strings.Join(parts, " ")
}

// feed writes msg in small pieces, as the session's DATA reader does.
func feed(m *MessageChecker, msg []byte) MessageResult {
	for len(msg) > 0 {
		n := min(7, len(msg))
		m.Write(msg[:n])
		msg = msg[n:]
	}
	return m.Close()
}

// TestDKIMAndARCWithPythonDKIM: messages signed and sealed by python3-dkim
// verify here; altered ones fail; a missing key is permerror.
func TestDKIMAndARCWithPythonDKIM(t *testing.T) {
	rsaKey, edKey, arcKey := newTestKey(t, false), newTestKey(t, true), newTestKey(t, false)
	d := newTestDNS(t,
		txtRR("rs._domainkey.example.org", rsaKey.record),
		txtRR("ed._domainkey.example.org", edKey.record),
		txtRR("arc._domainkey.relay.example", arcKey.record),
		txtRR("arc2._domainkey.list.example", arcKey.record),
	)
	r := d.resolver(t)
	ctx := context.Background()
	signed, err := pydkim(t, crlf(testMsg), "sign", rsaKey.file, "rs", "example.org", "rsa-sha256")
	if err != nil {
		t.Fatal(err)
	}
	both, err := pydkim(t, signed, "sign", edKey.file, "ed", "example.org", "ed25519-sha256")
	if err != nil {
		t.Fatal(err)
	}
	res := feed(NewMessageChecker(ctx, r, true, true), both)
	if len(res.DKIM) != 2 || res.DKIM[0].Result != "pass" || res.DKIM[1].Result != "pass" || res.ARC != "none" || res.FromDomain != "example.org" {
		t.Fatalf("signed: %+v", res)
	}
	if res.DKIM[0].Selector != "ed" || res.DKIM[1].Selector != "rs" || res.DKIM[0].Domain != "example.org" {
		t.Errorf("selectors: %+v", res.DKIM)
	}
	tampered := []byte(strings.Replace(string(both), "this is the body", "this is the b0dy", 1))
	res = feed(NewMessageChecker(ctx, r, true, false), tampered)
	if len(res.DKIM) != 2 || res.DKIM[0].Result != "fail" || res.DKIM[1].Result != "fail" {
		t.Errorf("tampered: %+v", res)
	}
	nokey, _ := pydkim(t, crlf(testMsg), "sign", rsaKey.file, "gone", "example.org", "rsa-sha256")
	res = feed(NewMessageChecker(ctx, r, true, false), nokey)
	if len(res.DKIM) != 1 || res.DKIM[0].Result != "permerror" {
		t.Errorf("no key: %+v", res)
	}

	// ARC: the relay adds its Authentication-Results and seals (i=1),
	// the list seals again (i=2).
	withAR := append([]byte("Authentication-Results: relay.example; dkim=pass header.d=example.org\r\n"), both...)
	sealed1, err := pydkim(t, withAR, "arcsign", arcKey.file, "arc", "relay.example", "relay.example")
	if err != nil {
		t.Fatal(err)
	}
	withAR2 := append([]byte("Authentication-Results: list.example; arc=pass\r\n"), sealed1...)
	sealed2, err := pydkim(t, withAR2, "arcsign", arcKey.file, "arc2", "list.example", "list.example")
	if err != nil {
		t.Fatal(err)
	}
	recs := dnsJSON(t, map[string]string{"arc._domainkey.relay.example": arcKey.record, "arc2._domainkey.list.example": arcKey.record})
	for i, m := range [][]byte{sealed1, sealed2} {
		out, _ := pydkim(t, m, "arcverify", recs)
		if !strings.HasPrefix(string(out), "pass") {
			t.Fatalf("python3-dkim does not verify its own seal %d: %s", i+1, out)
		}
		res = feed(NewMessageChecker(ctx, r, false, true), m)
		if res.ARC != "pass" {
			t.Errorf("sealed %d: %+v", i+1, res)
		}
	}
	broken := []byte(strings.Replace(string(sealed2), "Subject: hello", "Subject: hellO", 1))
	out, _ := pydkim(t, broken, "arcverify", recs)
	res = feed(NewMessageChecker(ctx, r, false, true), broken)
	if res.ARC != "fail" || !strings.HasPrefix(string(out), "fail") {
		t.Errorf("altered after sealing: ours %+v, python3-dkim %s", res, out)
	}
	// A seal removed: the chain has a gap.
	i := strings.Index(string(sealed2), "ARC-Seal: i=2")
	j := strings.Index(string(sealed2)[i:], "\r\nARC-")
	gap := append([]byte(string(sealed2)[:i]), sealed2[i+j+2:]...)
	if res = feed(NewMessageChecker(ctx, r, false, true), gap); res.ARC != "fail" {
		t.Errorf("gap: %+v", res)
	}
}

// TestDMARC: alignment (relaxed and strict, organizational domain by the
// public suffix list), the subdomain policy, no record, temperror.
func TestDMARC(t *testing.T) {
	d := newTestDNS(t,
		txtRR("_dmarc.example.org", "v=DMARC1; p=reject; sp=quarantine"),
		txtRR("_dmarc.strict.example", "v=DMARC1; p=quarantine; adkim=s; aspf=s"),
		txtRR("_dmarc.example.co.uk", "v=DMARC1; p=none"),
	)
	r := d.resolver(t)
	ctx := context.Background()
	pass := func(dom string) []rules.DKIMResult { return []rules.DKIMResult{{Domain: dom, Result: "pass"}} }
	cases := []struct {
		from, spf, spfDom string
		sigs              []rules.DKIMResult
		want, pol         string
	}{
		{"example.org", "pass", "example.org", nil, "pass", "reject"},
		{"example.org", "pass", "bounce.example.org", nil, "pass", "reject"},
		{"example.org", "fail", "example.org", pass("mail.example.org"), "pass", "reject"},
		{"example.org", "pass", "other.example", []rules.DKIMResult{{Domain: "example.org", Result: "fail"}}, "fail", "reject"},
		{"news.example.org", "none", "", nil, "fail", "quarantine"},
		{"strict.example", "pass", "a.strict.example", pass("b.strict.example"), "fail", "quarantine"},
		{"strict.example", "none", "", pass("strict.example"), "pass", "quarantine"},
		{"shop.example.co.uk", "pass", "example.co.uk", nil, "pass", "none"},
		{"other.co.uk", "pass", "example.co.uk", nil, "none", ""},
		{"x.servfail.test", "pass", "x.servfail.test", nil, "temperror", ""},
		{"", "pass", "example.org", nil, "none", ""},
	}
	for _, c := range cases {
		got := CheckDMARC(ctx, r, c.from, c.spf, c.spfDom, c.sigs)
		if got.Result != c.want || got.Policy != c.pol {
			t.Errorf("%s spf=%s(%s) dkim=%v: %+v, want %s %s", c.from, c.spf, c.spfDom, c.sigs, got, c.want, c.pol)
		}
	}
	sigs := []rules.DKIMResult{{Domain: "mail.example.org"}, {Domain: "example.com"}}
	AlignDKIM(sigs, "example.org")
	if !sigs[0].Aligned || sigs[1].Aligned {
		t.Errorf("aligned: %+v", sigs)
	}
}

// TestLookupsEnrich: the Enricher starts what the facts ask for and
// fills in every fact the set reads, from its stage on.
func TestLookupsEnrich(t *testing.T) {
	key := newTestKey(t, false)
	d := newTestDNS(t,
		txtRR("rs._domainkey.example.org", key.record),
		txtRR("_dmarc.example.org", "v=DMARC1; p=reject"),
		txtRR("example.org", "v=spf1 ip4:192.0.2.0/24 -all"),
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
		`10.2.0.192.bl.example. 300 IN A 127.0.0.2`,
	)
	r := d.resolver(t)
	signed, err := pydkim(t, crlf(testMsg), "sign", key.file, "rs", "example.org", "rsa-sha256")
	if err != nil {
		t.Fatal(err)
	}
	c := NewChecker(Config{Resolver: r, DNSBL: map[string]string{"local": "bl.example"}, PTR: true, SPF: true, DKIM: true, DMARC: true, ARC: true}, NeedsOf(nil))
	for _, ip := range []string{"192.0.2.10", "203.0.113.1"} {
		l := c.New(context.Background())
		feed(l.Message(), signed)
		f := &rules.Facts{Client: rules.Client{IP: ip, HELO: "mail.example.org"}, Envelope: rules.Envelope{From: "alice@example.org"}}
		l.Enrich(rules.StageConnect, f)
		if f.Auth.SPF != "" {
			t.Errorf("SPF at connect: %q", f.Auth.SPF)
		}
		l.Enrich(rules.StageData, f)
		got := fmt.Sprintf("%s %v %v %s %s %s %s %+v", f.Client.PTR, f.Client.FCrDNS, f.Client.Blocklisted, f.Auth.SPF, f.Auth.DMARC, f.Auth.DMARCPolicy, f.Auth.ARC, f.Auth.DKIM)
		want := map[string]string{
			"192.0.2.10":  "mail.example.org true [local] pass pass reject none [{Domain:example.org Selector:rs Result:pass Aligned:true}]",
			"203.0.113.1": " false [] fail pass reject none [{Domain:example.org Selector:rs Result:pass Aligned:true}]",
		}[ip]
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", ip, got, want)
		}
		ar := l.AuthenticationResultsField("mx.example.net", netip.MustParseAddr(ip), "mail.example.org", "alice@example.org")
		if !strings.HasPrefix(ar, "mx.example.net; spf=") || !strings.Contains(ar, "dkim=pass header.d=example.org header.s=rs; dmarc=pass header.from=example.org; arc=none") {
			t.Errorf("Authentication-Results: %q", ar)
		}
	}
	// skip_networks: no lookup for those clients.
	c = NewChecker(Config{Resolver: r, DNSBL: map[string]string{"local": "bl.example"}, PTR: true, SkipNetworks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, NeedsOf(nil))
	f := &rules.Facts{Client: rules.Client{IP: "192.0.2.10"}}
	c.New(context.Background()).Enrich(rules.StageConnect, f)
	if f.Client.PTR != "" || len(f.Client.Blocklisted) != 0 {
		t.Errorf("skipped network looked up: %+v", f.Client)
	}
}
