package config

import (
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"mailgate/facts"
	"mailgate/rules"
)

// DNS configures the one resolver every lookup goes through (dns:).
type DNS struct {
	Configured   bool           // the file has a dns: section (feeds Client.PTR and Client.FCrDNS)
	Servers      []string       // host:port; empty: /etc/resolv.conf
	Timeout      time.Duration  // per query
	CacheSize    int            // entries
	CacheBytes   int64          // and bytes
	SkipNetworks []netip.Prefix // clients never looked up (DNSBL, PTR)
}

// AuthChecks says which authentication facts are computed (auth_checks:).
type AuthChecks struct {
	SPF, DKIM, DMARC, ARC bool
	AuthservID            string // the Authentication-Results identifier (RFC 8601)
}

// On reports whether any check is on.
func (a AuthChecks) On() bool { return a.SPF || a.DKIM || a.DMARC || a.ARC }

// DKIMSign is the key mailgate re-signs its own rewritten mail with.
type DKIMSign struct {
	Domain   string
	Selector string
	Key      string // PEM file: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8)
}

// Defaults of the dns: section.
const (
	DefaultDNSTimeout    = 2 * time.Second
	DefaultDNSCacheSize  = 100000
	DefaultDNSCacheBytes = 64 << 20
)

type fileDNS struct {
	Servers      []string  `yaml:"servers"`
	Timeout      *duration `yaml:"timeout"`
	CacheSize    *int      `yaml:"cache_size"`
	CacheBytes   *size     `yaml:"cache_bytes"`
	SkipNetworks []string  `yaml:"skip_networks"`
}

type fileAuthChecks struct {
	SPF        *bool  `yaml:"spf"`
	DKIM       *bool  `yaml:"dkim"`
	DMARC      *bool  `yaml:"dmarc"`
	ARC        *bool  `yaml:"arc"`
	AuthservID string `yaml:"authserv_id"`
}

type fileDKIMSign struct {
	Domain   string `yaml:"domain"`
	Selector string `yaml:"selector"`
	Key      string `yaml:"key"`
}

// applyLookups reads the dns, auth_checks, dnsbl and dkim_sign sections.
func (c *Config) applyLookups(fc *fileConfig, bad func(keys []string, format string, args ...any)) {
	c.DNS = DNS{Timeout: DefaultDNSTimeout, CacheSize: DefaultDNSCacheSize, CacheBytes: DefaultDNSCacheBytes}
	if d := fc.DNS; d != nil {
		c.DNS.Configured = true
		for _, s := range d.Servers {
			if _, _, err := net.SplitHostPort(s); err == nil && validListenAddr(s) {
				c.DNS.Servers = append(c.DNS.Servers, s)
			} else if a, err := netip.ParseAddr(s); err == nil {
				c.DNS.Servers = append(c.DNS.Servers, netip.AddrPortFrom(a, 53).String())
			} else {
				bad([]string{"dns", "servers"}, "dns.servers: %q: want an address, optionally with :port", s)
			}
		}
		if d.Timeout != nil {
			c.DNS.Timeout = time.Duration(*d.Timeout)
		}
		if d.CacheSize != nil {
			if *d.CacheSize <= 0 {
				bad([]string{"dns", "cache_size"}, "dns.cache_size: %d must be greater than 0", *d.CacheSize)
			}
			c.DNS.CacheSize = *d.CacheSize
		}
		if d.CacheBytes != nil {
			if *d.CacheBytes <= 0 {
				bad([]string{"dns", "cache_bytes"}, "dns.cache_bytes: %d must be greater than 0", *d.CacheBytes)
			}
			c.DNS.CacheBytes = int64(*d.CacheBytes)
		}
		for _, s := range d.SkipNetworks {
			p, err := parsePrefix(s)
			if err != nil {
				bad([]string{"dns", "skip_networks"}, "dns.skip_networks: bad network %q", s)
				continue
			}
			c.DNS.SkipNetworks = append(c.DNS.SkipNetworks, p)
		}
	}
	if a := fc.AuthChecks; a != nil {
		v := func(b *bool) bool { return b == nil || *b } // a check named in the section is on unless false
		c.AuthChecks = AuthChecks{SPF: v(a.SPF), DKIM: v(a.DKIM), DMARC: v(a.DMARC), ARC: v(a.ARC), AuthservID: a.AuthservID}
		if c.AuthChecks.AuthservID == "" {
			c.AuthChecks.AuthservID = c.Hostname
		}
		if !validHostname(c.AuthChecks.AuthservID) {
			bad([]string{"auth_checks", "authserv_id"}, "auth_checks.authserv_id: %q is not a domain name", c.AuthChecks.AuthservID)
		}
	}
	if len(fc.DNSBL) > 0 {
		c.DNSBL = map[string]string{}
		for _, k := range slices.Sorted(maps.Keys(fc.DNSBL)) {
			zone := strings.TrimSuffix(fc.DNSBL[k], ".")
			switch {
			case !listNameRE.MatchString(k):
				bad([]string{"dnsbl", k}, "dnsbl: %q is not a valid name (letters, digits and _, not starting with a digit)", k)
			case zone == "" || !validHostname(zone):
				bad([]string{"dnsbl", k}, "dnsbl: %s: %q is not a DNS zone", k, fc.DNSBL[k])
			default:
				c.DNSBL[k] = zone
			}
		}
	}
	if s := fc.DKIMSign; s != nil {
		c.DKIMSign = &DKIMSign{Domain: strings.ToLower(strings.TrimSuffix(s.Domain, ".")), Selector: s.Selector, Key: c.abs(s.Key)}
		if !validHostname(c.DKIMSign.Domain) || !strings.Contains(c.DKIMSign.Domain, ".") {
			bad([]string{"dkim_sign", "domain"}, "dkim_sign.domain: %q is not a domain name", s.Domain)
		}
		if s.Selector == "" || !validHostname(s.Selector) {
			bad([]string{"dkim_sign", "selector"}, "dkim_sign.selector: %q is not a DNS label", s.Selector)
		}
		if s.Key == "" {
			bad([]string{"dkim_sign", "key"}, "dkim_sign.key: required (a PEM private key file)")
		} else if _, err := os.Stat(c.DKIMSign.Key); err != nil {
			bad([]string{"dkim_sign", "key"}, "dkim_sign.key: %v", unwrapPath(err))
		}
	}
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// FactSources says which lookup facts this configuration feeds, for the
// policy loader (rules.FactSources).
func (c *Config) FactSources() rules.FactSources {
	return rules.FactSources{
		DNS:   c.DNS.Configured,
		DNSBL: slices.Sorted(maps.Keys(c.DNSBL)),
		SPF:   c.AuthChecks.SPF, DKIM: c.AuthChecks.DKIM, DMARC: c.AuthChecks.DMARC, ARC: c.AuthChecks.ARC,
	}
}

// HasLookups reports whether c runs any DNS lookup or authentication
// check (dns:, auth_checks:, dnsbl:).
func (c *Config) HasLookups() bool {
	return c.DNS.Configured || c.AuthChecks.On() || len(c.DNSBL) > 0
}

// ResolverConfig is the dns: section as facts.NewResolver takes it.
func (c *Config) ResolverConfig() facts.ResolverConfig {
	return facts.ResolverConfig{Servers: c.DNS.Servers, Timeout: c.DNS.Timeout,
		CacheSize: c.DNS.CacheSize, CacheBytes: c.DNS.CacheBytes}
}

// FactsConfig is the lookups c configures, over r, as facts.NewChecker
// takes them: the proxy, the milter and check -c build their checkers
// from it alike.
func (c *Config) FactsConfig(r *facts.Resolver, log *slog.Logger) facts.Config {
	return facts.Config{
		Resolver: r, SkipNetworks: c.DNS.SkipNetworks, DNSBL: c.DNSBL, PTR: c.DNS.Configured,
		SPF: c.AuthChecks.SPF, DKIM: c.AuthChecks.DKIM, DMARC: c.AuthChecks.DMARC, ARC: c.AuthChecks.ARC,
		Log: log,
	}
}

// Signer loads dkim_sign's key; nil without dkim_sign.
func (c *Config) Signer() (*facts.Signer, error) {
	if c.DKIMSign == nil {
		return nil, nil
	}
	return facts.LoadSigner(c.DKIMSign.Domain, c.DKIMSign.Selector, c.DKIMSign.Key)
}
