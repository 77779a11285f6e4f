package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"mailgate/facts"
)

// serveDNS answers from zone-file records on a loopback UDP port:
// NXDOMAIN for any other name.
func serveDNS(t *testing.T, records ...string) string {
	t.Helper()
	rrs := map[string][]dns.RR{}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatal(err)
		}
		rrs[strings.ToLower(rr.Header().Name)] = append(rrs[strings.ToLower(rr.Header().Name)], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		list, ok := rrs[strings.ToLower(q.Name)]
		for _, rr := range list {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestLookupFactsCommands: lint -c refuses the authentication pack
// without the sections that feed its facts and takes it with them; check
// gets the facts through --dns (DMARC and DNSBL verdicts in a back-test)
// or none with --offline.
func TestLookupFactsCommands(t *testing.T) {
	pack, _ := filepath.Abs("../../policies/facts/authentication.yaml")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailgate.yaml")
	os.WriteFile(cfg, []byte("upstream: smtp://127.0.0.1:10025\npolicies: ["+pack+"]\n"), 0o644)
	var out, errb bytes.Buffer
	if code := runLint([]string{"-c", cfg}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "Client.Blocklisted needs dnsbl: in the configuration") ||
		!strings.Contains(errb.String(), "Auth.SPF needs auth_checks: {spf: true} in the configuration") {
		t.Fatalf("lint -c without the sections: exit %d: %s", code, errb.String())
	}
	os.WriteFile(cfg, []byte("upstream: smtp://127.0.0.1:10025\npolicies: ["+pack+"]\ndns: {servers: [127.0.0.1]}\n"+
		"dnsbl: {spamhaus: zen.spamhaus.org}\nauth_checks: {spf: true, dkim: true, dmarc: true, arc: true, authserv_id: mx.example.org}\n"), 0o644)
	errb.Reset()
	if code := runLint([]string{"-c", cfg}, &out, &errb); code != 0 {
		t.Fatalf("lint -c with the sections: exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := runTest([]string{"-c", cfg}, &out, &errb); code != 0 || !strings.Contains(out.String(), "7 tests, 7 passed") {
		t.Fatalf("test -c: exit %d: %s %s", code, out.String(), errb.String())
	}

	addr := serveDNS(t,
		`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
		`1.113.0.203.bl.example. 300 IN A 127.0.0.2`,
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
		`mail.example.org. 300 IN A 192.0.2.10`,
	)
	msg := filepath.Join(dir, "m.eml")
	os.WriteFile(msg, []byte("From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: hi\nDate: Mon, 07 Dec 2026 01:00:00 +0000\nMessage-ID: <1@example.org>\n\nhello\n"), 0o644)
	run := func(args ...string) (int, string, string) {
		code, stdout, stderr := runCheckT(t, append([]string{"-p", pack, "--from", "alice@example.org"}, append(args, msg)...)...)
		line, _, _ := strings.Cut(stdout, "\n") // the message's verdict line, before the hit table
		return code, line, stderr
	}
	code, stdout, stderr := run("--dns", addr, "--client-ip", "203.0.113.9")
	if code != 0 || !strings.Contains(stdout, "reject") || !strings.Contains(stdout, "dmarc-reject") || !strings.Contains(stdout, "spf-fail") {
		t.Errorf("forged sender: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run("--dns", addr, "--client-ip", "192.0.2.10")
	if code != 0 || !strings.Contains(stdout, "accept") || strings.Contains(stdout, "dmarc-reject") || strings.Contains(stdout, "no-fcrdns") {
		t.Errorf("authorised client: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run("--dns", addr, "--dnsbl", "local=bl.example", "--client-ip", "203.0.113.1")
	if code != 0 || !strings.Contains(stdout, "blocklisted-client") {
		t.Errorf("listed client: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run("--offline", "--client-ip", "203.0.113.9")
	if code != 0 || !strings.Contains(stdout, "accept") || strings.Contains(stdout, "dmarc-reject") {
		t.Errorf("offline: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, _ = run("--offline", "--dns", addr); code != 2 {
		t.Errorf("--offline with --dns: exit %d", code)
	}
}

// TestCheckOutAuthResults: check -c --out writes what serve relays: the
// Authentication-Results field (a forged one claiming our id removed) and,
// for our own rewritten mail, a DKIM signature that verifies.
func TestCheckOutAuthResults(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "dkim.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	rec := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	var parts []string
	for s := rec; len(s) > 0; s = s[min(200, len(s)):] {
		parts = append(parts, `"`+s[:min(200, len(s))]+`"`)
	}
	addr := serveDNS(t,
		`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
		`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"`,
		`mg1._domainkey.example.org. 300 IN TXT `+strings.Join(parts, " "),
	)
	os.WriteFile(filepath.Join(dir, "local.yaml"), []byte("rules:\n  - name: tag\n    when: 'FromDomain == \"example.org\"'\n    subject_prefix: \"[x] \"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "mailgate.yaml"), []byte("upstream: smtp://127.0.0.1:10025\nhostname: mx.example.net\npolicies: [local.yaml]\n"+
		"dns: {servers: [\""+addr+"\"]}\nauth_checks: {spf: true, dkim: true, dmarc: true, arc: true, authserv_id: mx.example.net}\n"+
		"dkim_sign: {domain: example.org, selector: mg1, key: dkim.pem}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "m.eml"), []byte("Authentication-Results: mx.example.net; dkim=pass\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\n"+
		"Subject: hi\r\nDate: Mon, 07 Dec 2026 01:00:00 +0000\r\nMessage-ID: <o@example.org>\r\n\r\nhello\r\n"), 0o644)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCheckT(t, "-c", filepath.Join(dir, "mailgate.yaml"), "--client-ip", "192.0.2.10", "--from", "alice@example.org", "--out", out, filepath.Join(dir, "m.eml"))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	got, err := os.ReadFile(filepath.Join(out, dir, "m.eml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(got)
	if !strings.HasPrefix(s, "DKIM-Signature: ") || strings.Count(s, "Authentication-Results: mx.example.net") != 1 ||
		!strings.Contains(strings.ReplaceAll(s, "\r\n ", " "), "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=alice@example.org; dkim=none; dmarc=pass header.from=example.org; arc=none") ||
		!strings.Contains(s, "Subject: [x] hi") {
		t.Fatalf("--out:\n%s", s)
	}
	r, err := facts.NewResolver(facts.ResolverConfig{Servers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	mc := facts.NewMessageChecker(context.Background(), r, true, false)
	mc.Write(got)
	if res := mc.Close(); len(res.DKIM) != 1 || res.DKIM[0].Result != "pass" || res.DKIM[0].Selector != "mg1" {
		t.Errorf("re-signature: %+v", res)
	}
}
