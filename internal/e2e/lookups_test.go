package e2e

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"mailgate/facts"
	"mailgate/rules"
)

const lookupMsg = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: lookups\r\n" +
	"Date: Mon, 07 Dec 2026 01:00:00 +0000\r\nMessage-ID: <e2e@example.org>\r\n\r\nHello through unbound.\r\n"

// TestLookupFactsThroughUnbound computes every lookup fact end to end
// through a real DNS server (a private unbound): PTR/FCrDNS, a listed and
// an unlisted DNSBL client, SPF pass and fail, DKIM pass and fail on
// python3-dkim-signed mail, DMARC pass and fail, ARC pass and fail.
func TestLookupFactsThroughUnbound(t *testing.T) {
	dkimFile, dkimRec := DKIMKey(t)
	arcFile, arcRec := DKIMKey(t)
	u := StartUnbound(t,
		[]string{"example.org", "example.net", "relay.example", "bl.example", "2.0.192.in-addr.arpa", "113.0.203.in-addr.arpa"},
		[]string{
			`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
			`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
			`s1._domainkey.example.org. 300 IN TXT "` + dkimRec + `"`,
			`arc._domainkey.relay.example. 300 IN TXT "` + arcRec + `"`,
			`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
			`mail.example.org. 300 IN A 192.0.2.10`,
			`9.113.0.203.in-addr.arpa. 300 IN PTR dsl-9.example.net.`,
			`9.113.0.203.bl.example. 300 IN A 127.0.0.2`,
		})
	r, err := facts.NewResolver(facts.ResolverConfig{Servers: []string{u.Addr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good, bad := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("203.0.113.9")
	zones := map[string]string{"local": "bl.example"}

	c := facts.CheckClient(ctx, r, good, zones)
	if c.PTR != "mail.example.org" || !c.FCrDNS || len(c.DNSBL["local"]) != 0 || len(c.Errors) != 0 {
		t.Errorf("unlisted client with FCrDNS: %+v", c)
	}
	c = facts.CheckClient(ctx, r, bad, zones)
	if c.PTR != "dsl-9.example.net" || c.FCrDNS || strings.Join(c.DNSBL["local"], ",") != "127.0.0.2" {
		t.Errorf("listed client without FCrDNS: %+v", c)
	}

	if res, _ := facts.CheckSPF(ctx, r, good, "mail.example.org", "alice@example.org"); res != "pass" {
		t.Errorf("SPF for an authorised client: %s", res)
	}
	if res, _ := facts.CheckSPF(ctx, r, bad, "dsl-9.example.net", "alice@example.org"); res != "fail" {
		t.Errorf("SPF for another client: %s", res)
	}

	signed := PyDKIM(t, []byte(lookupMsg), "sign", dkimFile, "s1", "example.org", "rsa-sha256")
	checker := facts.NewChecker(facts.Config{Resolver: r, DNSBL: zones, PTR: true, SPF: true, DKIM: true, DMARC: true, ARC: true}, facts.NeedsOf(nil))
	auth := func(ip netip.Addr, msg []byte) *rules.Facts {
		l := checker.New(ctx)
		l.Message().Write(msg)
		f := &rules.Facts{Client: rules.Client{IP: ip.String(), HELO: "client.example"}, Envelope: rules.Envelope{From: "alice@example.org"}}
		l.Enrich(rules.StageData, f)
		return f
	}
	f := auth(bad, signed)
	if len(f.Auth.DKIM) != 1 || f.Auth.DKIM[0].Result != "pass" || !f.Auth.DKIM[0].Aligned || f.Auth.DMARC != "pass" || f.Auth.DMARCPolicy != "reject" {
		t.Errorf("signed, SPF fail: DKIM passes, DMARC passes: %+v", f.Auth)
	}
	altered := bytes.Replace(signed, []byte("Hello through"), []byte("Hullo through"), 1)
	f = auth(bad, altered)
	if len(f.Auth.DKIM) != 1 || f.Auth.DKIM[0].Result != "fail" || f.Auth.SPF != "fail" || f.Auth.DMARC != "fail" {
		t.Errorf("altered, SPF fail: DKIM and DMARC fail: %+v", f.Auth)
	}
	f = auth(good, altered)
	if f.Auth.DMARC != "pass" || f.Auth.ARC != "none" {
		t.Errorf("SPF pass aligned: DMARC passes: %+v", f.Auth)
	}

	sealed := PyDKIM(t, append([]byte("Authentication-Results: relay.example; dkim=pass header.d=example.org\r\n"), signed...),
		"arcsign", arcFile, "arc", "relay.example", "relay.example")
	if f = auth(bad, sealed); f.Auth.ARC != "pass" {
		t.Errorf("ARC sealed by python3-dkim: %+v", f.Auth)
	}
	if f = auth(bad, bytes.Replace(sealed, []byte("Hello through"), []byte("Hullo through"), 1)); f.Auth.ARC != "fail" {
		t.Errorf("ARC over an altered body: %+v", f.Auth)
	}
	st := r.Stats()
	t.Logf("resolver: %.0f queries, %.0f cache hits, %.0f timeouts", st.Queries, st.Hits, st.Timeouts)
	if st.Hits == 0 || st.Timeouts != 0 {
		t.Errorf("stats %+v", st)
	}
}
