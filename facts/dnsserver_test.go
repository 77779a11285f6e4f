package facts

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is an in-process authoritative server for the unit tests:
// records in zone-file syntax; names under servfail.test answer SERVFAIL
// and names under slow.test never answer.
type testDNS struct {
	addr    string
	mu      sync.Mutex
	rrs     map[string][]dns.RR
	queries atomic.Int64
	delay   atomic.Int64 // nanoseconds before each answer
}

func newTestDNS(t testing.TB, records ...string) *testDNS {
	t.Helper()
	d := &testDNS{rrs: map[string][]dns.RR{}}
	d.add(t, records...)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: d}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	d.addr = pc.LocalAddr().String()
	return d
}

func (d *testDNS) add(t testing.TB, records ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		n := strings.ToLower(rr.Header().Name)
		d.rrs[n] = append(d.rrs[n], rr)
	}
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if strings.HasSuffix(name, "slow.test.") {
		return
	}
	if dl := time.Duration(d.delay.Load()); dl > 0 {
		time.Sleep(dl)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if strings.HasSuffix(name, "servfail.test.") {
		m.Rcode = dns.RcodeServerFailure
		w.WriteMsg(m)
		return
	}
	d.mu.Lock()
	rrs, ok := d.rrs[name]
	d.mu.Unlock()
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	if len(m.Answer) == 0 {
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		soa, _ := dns.NewRR(". 60 IN SOA ns.test. host.test. 1 3600 600 86400 30")
		m.Ns = append(m.Ns, soa)
	}
	w.WriteMsg(m)
}

func (d *testDNS) resolver(t testing.TB) *Resolver {
	r, err := NewResolver(ResolverConfig{Servers: []string{d.addr}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
