package facts

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ClientResult is what the lookups found about the client address.
type ClientResult struct {
	PTR    string              // first PTR name, "" if none
	FCrDNS bool                // PTR resolves back to the address
	DNSBL  map[string][]string // NAME → answers; empty when not listed or on temperror
	Errors []string            // temperrors, for the log (a blocklist's error codes too)
}

// maxFCrDNSNames bounds the PTR names whose addresses are looked up.
const maxFCrDNSNames = 5

// CheckClient looks up the PTR name (then its addresses) and every
// blocklist of zones (NAME → zone) concurrently: the time is that of the
// longest chain (PTR then A), not the sum.
func CheckClient(ctx context.Context, r *Resolver, ip netip.Addr, zones map[string]string) ClientResult {
	ip = ip.Unmap()
	res := ClientResult{DNSBL: map[string][]string{}}
	type bl struct {
		name    string
		answers []string
		err     error
	}
	ch := make(chan bl, len(zones))
	for name, zone := range zones {
		go func() {
			a, err := DNSBLQuery(ctx, r, ip, zone)
			ch <- bl{name, a, err}
		}()
	}
	ptr, fcrdns, err := checkPTR(ctx, r, ip)
	res.PTR, res.FCrDNS = ptr, fcrdns
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	for range zones {
		b := <-ch
		if b.err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("dnsbl %s: %v", b.name, b.err))
			continue
		}
		res.DNSBL[b.name] = b.answers
	}
	slices.Sort(res.Errors)
	return res
}

func checkPTR(ctx context.Context, r *Resolver, ip netip.Addr) (string, bool, error) {
	names, err := r.LookupAddr(ctx, ip.String())
	if err != nil {
		if IsNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("ptr: %w", err)
	}
	if len(names) == 0 {
		return "", false, nil
	}
	var lastErr error
	for _, n := range names[:min(len(names), maxFCrDNSNames)] {
		addrs, err := r.LookupIPAddr(ctx, n)
		if err != nil {
			if !IsNotFound(err) {
				lastErr = err
			}
			continue
		}
		for _, a := range addrs {
			if aa, ok := netip.AddrFromSlice(a.IP); ok && aa.Unmap() == ip {
				return names[0], true, nil
			}
		}
	}
	if lastErr != nil {
		return names[0], false, fmt.Errorf("fcrdns: %w", lastErr)
	}
	return names[0], false, nil
}

// ErrDNSBLCode is a blocklist's answer outside 127.0.0.0/8 or inside
// 127.255.255.0/24: an error code (query refused, rate limited), not a
// listing.
type ErrDNSBLCode struct{ Answer netip.Addr }

func (e ErrDNSBLCode) Error() string {
	return fmt.Sprintf("blocklist answered %s, an error code, not a listing (temperror)", e.Answer)
}

var (
	loopback8   = netip.MustParsePrefix("127.0.0.0/8")
	dnsblErrors = netip.MustParsePrefix("127.255.255.0/24")
)

// DNSBLQuery asks zone about ip: nil when not listed, the answers when
// listed, an error on a temperror (timeout, SERVFAIL, an error code).
func DNSBLQuery(ctx context.Context, r *Resolver, ip netip.Addr, zone string) ([]string, error) {
	name := dnsblName(ip.Unmap(), zone)
	addrs, err := r.lookupA(ctx, name)
	if err != nil {
		if IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, a := range addrs {
		if !loopback8.Contains(a) || dnsblErrors.Contains(a) {
			return nil, ErrDNSBLCode{a}
		}
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out, nil
}

// dnsblName is the query name: the address's octets (IPv4) or nibbles
// (IPv6) reversed, then the zone.
func dnsblName(ip netip.Addr, zone string) string {
	arpa, _ := dns.ReverseAddr(ip.String()) // "4.3.2.1.in-addr.arpa." or nibbles ".ip6.arpa."
	arpa = strings.TrimSuffix(strings.TrimSuffix(arpa, "in-addr.arpa."), "ip6.arpa.")
	return arpa + strings.TrimSuffix(zone, ".") + "."
}
