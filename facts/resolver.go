// Package facts computes the facts that need the network: the client's
// PTR name and FCrDNS, DNSBL listings, SPF, DKIM, DMARC and ARC
// (docs/policy.md "Lookup facts"), through one caching resolver, and
// signs mailgate's own rewritten mail with DKIM. It feeds rules through
// rules.Enricher and never imports proxy.
package facts

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// ResolverConfig configures the resolver (config dns:).
type ResolverConfig struct {
	Servers    []string      // host:port; empty: the nameservers of /etc/resolv.conf
	Timeout    time.Duration // per query (all servers and retries together); 0: 2s
	CacheSize  int           // entries; 0: 100000
	CacheBytes int64         // approximate bytes of the cached answers; 0: 64 MiB
}

// Bounds of the cache's lifetimes: a record's TTL is honoured within them
// (a TTL of 0 is not cached).
const (
	maxTTL      = 24 * time.Hour
	negativeTTL = 5 * time.Minute // NXDOMAIN/NODATA without an SOA to say otherwise
)

// Resolver is a caching stub resolver: every lookup of mailgate goes
// through one. Safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	udp, tcp *dns.Client
	now      func() time.Time

	mu       sync.Mutex
	cache    *lru.Cache[cacheKey, *cacheEntry]
	bytes    int64
	maxBytes int64
	flight   singleflight.Group

	queries, hits, timeouts, failures prometheus.Counter
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs      []dns.RR
	notFound bool
	expires  time.Time
	size     int64
}

// NewResolver makes a resolver; without servers it reads /etc/resolv.conf.
func NewResolver(c ResolverConfig) (*Resolver, error) {
	servers := c.Servers
	if len(servers) == 0 {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("dns: no servers configured and /etc/resolv.conf: %w", err)
		}
		for _, s := range cc.Servers {
			servers = append(servers, net.JoinHostPort(s, cc.Port))
		}
		if len(servers) == 0 {
			return nil, errors.New("dns: no servers configured and none in /etc/resolv.conf")
		}
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 100000
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 64 << 20
	}
	r := &Resolver{
		servers:  servers,
		timeout:  c.Timeout,
		udp:      &dns.Client{Net: "udp", UDPSize: 1232},
		tcp:      &dns.Client{Net: "tcp"},
		now:      time.Now,
		maxBytes: c.CacheBytes,
		queries:  prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_dns_queries_total", Help: "DNS lookups asked of the resolver (cached or not)."}),
		hits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_dns_cache_hits_total", Help: "DNS lookups answered from the cache."}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_dns_timeouts_total", Help: "DNS lookups that timed out (a temperror fact)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "mailgate_dns_failures_total", Help: "DNS lookups answered SERVFAIL, REFUSED or unreachable (a temperror fact)."}),
	}
	var err error
	r.cache, err = lru.NewWithEvict(c.CacheSize, func(_ cacheKey, e *cacheEntry) { r.bytes -= e.size })
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Collectors are the resolver's metrics, for the caller's registry.
func (r *Resolver) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.queries, r.hits, r.timeouts, r.failures}
}

// Stats are the metrics' values (for tests and benchmarks).
type Stats struct{ Queries, Hits, Timeouts, Failures float64 }

func (r *Resolver) Stats() Stats {
	return Stats{counterValue(r.queries), counterValue(r.hits), counterValue(r.timeouts), counterValue(r.failures)}
}

// Errors of Query, as *net.DNSError so that the SPF, DKIM and DMARC
// libraries classify them: IsNotFound (NXDOMAIN, no data) or
// IsTemporary/IsTimeout (a temperror fact).
func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func temporary(name, why string, timeout bool) error {
	return &net.DNSError{Err: why, Name: name, IsTemporary: true, IsTimeout: timeout}
}

// IsTemporary reports whether err is a temporary DNS failure (temperror).
func IsTemporary(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && (de.IsTemporary || de.IsTimeout)
}

// IsNotFound reports whether err says the name or the data does not exist.
func IsNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// Query returns the answer records of type qtype for name (CNAMEs
// followed by the server), from the cache while their TTL lasts.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	name = dns.Fqdn(strings.ToLower(name))
	if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
		return nil, notFound(name)
	}
	r.queries.Inc()
	key := cacheKey{name, qtype}
	r.mu.Lock()
	if e, ok := r.cache.Get(key); ok {
		if r.now().Before(e.expires) {
			r.mu.Unlock()
			r.hits.Inc()
			if e.notFound {
				return nil, notFound(name)
			}
			return e.rrs, nil
		}
		r.cache.Remove(key)
	}
	r.mu.Unlock()
	v, err, _ := r.flight.Do(fmt.Sprintf("%s/%d", name, qtype), func() (any, error) {
		return r.exchange(ctx, name, qtype)
	})
	if err != nil {
		return nil, err
	}
	e := v.(*cacheEntry)
	if e.notFound {
		return nil, notFound(name)
	}
	return e.rrs, nil
}

// exchange asks the servers in turn within the timeout and caches the
// answer (positive or negative) for its TTL.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*cacheEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	var lastErr error
	for _, srv := range r.servers {
		resp, _, err := r.udp.ExchangeContext(ctx, m, srv)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, m, srv)
		}
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				break
			}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return r.store(name, qtype, resp), nil
		default:
			lastErr = fmt.Errorf("%s", dns.RcodeToString[resp.Rcode])
		}
	}
	var ne net.Error
	if ctx.Err() != nil || errors.As(lastErr, &ne) && ne.Timeout() {
		r.timeouts.Inc()
		return nil, temporary(name, "timeout", true)
	}
	r.failures.Inc()
	why := "no answer"
	if lastErr != nil {
		why = lastErr.Error()
	}
	return nil, temporary(name, why, false)
}

func (r *Resolver) store(name string, qtype uint16, resp *dns.Msg) *cacheEntry {
	e := &cacheEntry{}
	ttl := maxTTL
	for _, rr := range resp.Answer {
		if rr.Header().Rrtype == qtype {
			e.rrs = append(e.rrs, rr)
		}
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if len(e.rrs) == 0 {
		// NXDOMAIN or NODATA: negative caching for the SOA's minimum
		// (RFC 2308 §5), or a fixed while without one.
		e.notFound, ttl = true, negativeTTL
		for _, rr := range resp.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			}
		}
	}
	if ttl <= 0 {
		return e
	}
	e.expires = r.now().Add(ttl)
	e.size = int64(len(name)) + 64
	for _, rr := range e.rrs {
		e.size += int64(dns.Len(rr))
	}
	key := cacheKey{name, qtype}
	r.mu.Lock()
	if old, ok := r.cache.Peek(key); ok {
		r.bytes -= old.size
	}
	r.cache.Add(key, e)
	r.bytes += e.size
	for r.bytes > r.maxBytes && r.cache.Len() > 0 {
		r.cache.RemoveOldest()
	}
	r.mu.Unlock()
	return e
}

// The methods below make a Resolver the spf.DNSResolver (and the lookup
// functions of go-msgauth) over the cache.

// LookupTXT returns each TXT record's strings joined.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.Query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the A and AAAA addresses (looked up together).
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	type res struct {
		rrs []dns.RR
		err error
	}
	ch := make(chan res, 1)
	go func() {
		rrs, err := r.Query(ctx, host, dns.TypeAAAA)
		ch <- res{rrs, err}
	}()
	a, errA := r.Query(ctx, host, dns.TypeA)
	aaaa := <-ch
	if errA != nil && aaaa.err != nil {
		if IsTemporary(errA) {
			return nil, errA
		}
		return nil, aaaa.err
	}
	var out []net.IPAddr
	for _, rr := range append(a, aaaa.rrs...) {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, net.IPAddr{IP: v.A})
		case *dns.AAAA:
			out = append(out, net.IPAddr{IP: v.AAAA})
		}
	}
	if len(out) == 0 {
		if IsTemporary(errA) {
			return nil, errA
		}
		if IsTemporary(aaaa.err) {
			return nil, aaaa.err
		}
		return nil, notFound(host)
	}
	return out, nil
}

// LookupAddr returns the PTR names of an address, without the final dot.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, notFound(addr)
	}
	rrs, err := r.Query(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.TrimSuffix(rr.(*dns.PTR).Ptr, "."))
	}
	return out, nil
}

// lookupA returns the IPv4 answers of name (a DNSBL query).
func (r *Resolver) lookupA(ctx context.Context, name string) ([]netip.Addr, error) {
	rrs, err := r.Query(ctx, name, dns.TypeA)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.A).A); ok {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}
