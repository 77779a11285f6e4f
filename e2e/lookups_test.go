package e2e_test

// Back-testing with the lookup facts: the built binary's `check` asks a
// real DNS server (a private unbound) for SPF, DKIM keys, DMARC records,
// PTRs and a blocklist, and the authentication pack decides on them
// (docs/policy.md "Lookup facts").

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mailgate/internal/e2e"
)

func TestCheckLookupsThroughUnbound(t *testing.T) {
	keyFile, keyRec := e2e.DKIMKey(t)
	u := e2e.StartUnbound(t,
		[]string{"example.org", "bl.example", "2.0.192.in-addr.arpa", "113.0.203.in-addr.arpa"},
		[]string{
			`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`,
			`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
			`s1._domainkey.example.org. 300 IN TXT "` + keyRec + `"`,
			`10.2.0.192.in-addr.arpa. 300 IN PTR mail.example.org.`,
			`mail.example.org. 300 IN A 192.0.2.10`,
			`7.113.0.203.bl.example. 300 IN A 127.0.0.2`,
		})
	dir := t.TempDir()
	plain := "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: back-test\r\n" +
		"Date: Mon, 07 Dec 2026 01:00:00 +0000\r\nMessage-ID: <bt@example.org>\r\n\r\nHello.\r\n"
	signed := e2e.PyDKIM(t, []byte(plain), "sign", keyFile, "s1", "example.org", "rsa-sha256")
	os.WriteFile(filepath.Join(dir, "plain.eml"), []byte(plain), 0o644)
	os.WriteFile(filepath.Join(dir, "signed.eml"), signed, 0o644)
	pack := filepath.Join(e2e.RepoRoot(t), "policies/facts/authentication.yaml")
	check := func(ip, file string) map[string]any {
		t.Helper()
		out, errOut, code := runMailgate(t, dir, "check", "-p", pack, "--dns", u.Addr, "--dnsbl", "local=bl.example",
			"--client-ip", ip, "--helo", "client.example", "--from", "alice@example.org", "--json", file)
		var j map[string]any
		if code != 0 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &j) != nil {
			t.Fatalf("check %s from %s: exit %d\n%s\n%s", file, ip, code, out, errOut)
		}
		return j
	}
	rulesOf := func(j map[string]any) string {
		var names []string
		for _, r := range j["rules"].([]any) {
			names = append(names, r.(string))
		}
		return strings.Join(names, ",")
	}
	cases := []struct{ ip, file, verdict, rules string }{
		{"192.0.2.10", "plain.eml", "accept", ""},                                 // SPF pass, aligned: DMARC pass, FCrDNS
		{"203.0.113.9", "plain.eml", "reject", "no-fcrdns,spf-fail,dmarc-reject"}, // forged: DMARC fails, p=reject
		{"203.0.113.9", "signed.eml", "accept", "no-fcrdns,spf-fail"},             // aligned DKIM passes: DMARC passes
		{"203.0.113.7", "signed.eml", "reject", "blocklisted-client"},             // listed at connect
	}
	for _, c := range cases {
		j := check(c.ip, c.file)
		if j["verdict"] != c.verdict || rulesOf(j) != c.rules {
			t.Errorf("%s from %s: %v %s, want %s %s", c.file, c.ip, j["verdict"], rulesOf(j), c.verdict, c.rules)
		}
	}
	// Offline, the same forged message passes: every lookup is none.
	out, _, code := runMailgate(t, dir, "check", "-p", pack, "--offline", "--client-ip", "203.0.113.9", "--from", "alice@example.org", "plain.eml")
	if code != 0 || !strings.HasPrefix(out, "plain.eml: accept") {
		t.Errorf("offline: exit %d: %s", code, out)
	}
}
