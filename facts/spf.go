package facts

import (
	"context"
	"net"
	"net/netip"

	"blitiri.com.ar/go/spf"
)

// CheckSPF evaluates SPF (RFC 7208) for the MAIL FROM address, or for
// the HELO name when the sender is empty (the null reverse-path). The
// result is one of pass, fail, softfail, neutral, none, temperror,
// permerror; the domain is the one checked (for DMARC alignment).
func CheckSPF(ctx context.Context, r *Resolver, ip netip.Addr, helo, from string) (result, domain string) {
	domain = addrDomain(from)
	sender := from
	if domain == "" {
		domain = helo
		sender = "postmaster@" + helo
	}
	if domain == "" {
		return "none", ""
	}
	res, _ := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender, spf.WithResolver(r), spf.WithContext(ctx))
	return string(res), domain
}
