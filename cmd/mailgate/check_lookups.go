package main

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"

	"mailgate/config"
	"mailgate/facts"
	"mailgate/rules"
)

// chkLookups builds the DNS lookups of check: those of the config (-c)
// when it has a dns:, auth_checks: or dnsbl: section, or every lookup
// through --dns for -p (blocklists from --dnsbl). nil means offline:
// every lookup fact is none, as in the policy tests without facts:.
func chkLookups(o *checkOptions, cfg *config.Config, set *rules.Set) (*facts.Checker, error) {
	if o.offline {
		if o.dns != "" || len(o.dnsbl) > 0 {
			return nil, usageError{"--offline excludes --dns and --dnsbl"}
		}
		return nil, nil
	}
	var fc facts.Config
	var rc facts.ResolverConfig
	switch {
	case cfg != nil:
		if len(o.dnsbl) > 0 {
			return nil, usageError{"-c excludes --dnsbl (the config names the blocklists)"}
		}
		if !cfg.HasLookups() && o.dns == "" {
			return nil, nil
		}
		fc = cfg.FactsConfig(nil, nil)
		rc = cfg.ResolverConfig()
	case o.dns == "":
		if len(o.dnsbl) > 0 {
			return nil, usageError{"--dnsbl needs --dns (the servers to ask)"}
		}
		return nil, nil
	default:
		fc = facts.Config{PTR: true, SPF: true, DKIM: true, DMARC: true, ARC: true, DNSBL: maps.Clone(map[string]string(o.dnsbl))}
	}
	if o.dns != "" {
		rc.Servers = nil
		for _, s := range strings.Split(o.dns, ",") {
			s = strings.TrimSpace(s)
			if a, err := netip.ParseAddr(s); err == nil {
				s = netip.AddrPortFrom(a, 53).String()
			} else if _, _, err := net.SplitHostPort(s); err != nil {
				return nil, usageError{fmt.Sprintf("--dns: %q is not host[:port]", s)}
			}
			rc.Servers = append(rc.Servers, s)
		}
	}
	r, err := facts.NewResolver(rc)
	if err != nil {
		return nil, err
	}
	fc.Resolver = r
	return facts.NewChecker(fc, facts.NeedsOf(set)), nil
}

// chkCRLF gives a message read from a file the CRLF line ends SMTP
// carries (files on disk often have bare LF).
func chkCRLF(raw []byte) []byte {
	if bytes.Count(raw, []byte("\r\n")) == bytes.Count(raw, []byte("\n")) {
		return raw
	}
	out := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(out, []byte("\n"), []byte("\r\n"))
}
