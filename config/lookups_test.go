package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestParseLookupSections: dns, auth_checks, dnsbl and dkim_sign with
// their defaults, and what the policy loader is told they feed.
func TestParseLookupSections(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "dkim.key"), []byte("x"), 0o600)
	src := `upstream: smtp://127.0.0.1:25
hostname: mx.example.org
dns: {servers: ["127.0.0.1:5353", "::1"], timeout: 1s, cache_bytes: 1MiB, skip_networks: [10.0.0.0/8]}
auth_checks: {spf: true, dkim: true, dmarc: false}
dnsbl: {spamhaus: zen.spamhaus.org., local: bl.example.org}
dkim_sign: {domain: Example.ORG, selector: mg1, key: dkim.key}
`
	c, err := Parse(filepath.Join(dir, "mailgate.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !c.DNS.Configured || strings.Join(c.DNS.Servers, ",") != "127.0.0.1:5353,[::1]:53" || c.DNS.Timeout != time.Second ||
		c.DNS.CacheBytes != 1<<20 || c.DNS.CacheSize != DefaultDNSCacheSize || len(c.DNS.SkipNetworks) != 1 {
		t.Errorf("dns: %+v", c.DNS)
	}
	a := c.AuthChecks
	if !a.SPF || !a.DKIM || a.DMARC || !a.ARC || a.AuthservID != "mx.example.org" {
		t.Errorf("auth_checks: %+v (a check named is on unless false; arc absent from the section is on too)", a)
	}
	if c.DNSBL["spamhaus"] != "zen.spamhaus.org" || c.DNSBL["local"] != "bl.example.org" {
		t.Errorf("dnsbl: %v", c.DNSBL)
	}
	if c.DKIMSign == nil || c.DKIMSign.Domain != "example.org" || c.DKIMSign.Key != filepath.Join(dir, "dkim.key") {
		t.Errorf("dkim_sign: %+v", c.DKIMSign)
	}
	fs := c.FactSources()
	if !fs.DNS || !fs.SPF || fs.DMARC || strings.Join(fs.DNSBL, ",") != "local,spamhaus" || fs.All {
		t.Errorf("fact sources: %+v", fs)
	}
	d, err := Parse("x.yaml", []byte("upstream: smtp://127.0.0.1:25\n"))
	if err != nil {
		t.Fatal(err)
	}
	if fs := d.FactSources(); fs.DNS || fs.SPF || len(fs.DNSBL) > 0 || d.AuthChecks.On() || d.DKIMSign != nil {
		t.Errorf("no sections, yet facts fed: %+v", fs)
	}
	bad := []struct{ src, want string }{
		{"dns: {servers: [nowhere]}", `dns.servers: "nowhere"`},
		{"dns: {cache_size: 0}", "dns.cache_size: 0 must be greater than 0"},
		{"dns: {timeout: soon}", `bad duration "soon"`},
		{"dns: {skip_networks: [10/8]}", `dns.skip_networks: bad network "10/8"`},
		{"dnsbl: {1bad: zen.spamhaus.org}", `dnsbl: "1bad" is not a valid name`},
		{"dnsbl: {x: 'not a zone'}", `dnsbl: x: "not a zone" is not a DNS zone`},
		{"auth_checks: {spf: yes please}", "spf"},
		{"auth_checks: {authserv_id: 'a b'}", `auth_checks.authserv_id: "a b" is not a domain name`},
		{"dkim_sign: {domain: example.org, selector: mg1, key: /nonexistent/k.pem}", "dkim_sign.key: no such file or directory"},
		{"dkim_sign: {domain: example.org, key: /nonexistent/k.pem}", `dkim_sign.selector: "" is not a DNS label`},
		{"dnsbls: {}", "dnsbls"},
	}
	for _, b := range bad {
		_, err := Parse("x.yaml", []byte("upstream: smtp://127.0.0.1:25\n"+b.src+"\n"))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: got %v, want %q", b.src, err, b.want)
		}
	}
}

// TestCheckFilesDKIMKey: lint -c reads the dkim_sign key as serve does.
func TestCheckFilesDKIMKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "dkim.key")
	os.WriteFile(key, []byte("not a key"), 0o600)
	c, err := Parse(filepath.Join(dir, "m.yaml"), []byte("upstream: smtp://127.0.0.1:25\ndkim_sign: {domain: example.org, selector: mg1, key: dkim.key}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles(); err == nil || !strings.Contains(err.Error(), "dkim_sign.key: "+key+": no PEM block") {
		t.Errorf("bad key accepted: %v", err)
	}
}
