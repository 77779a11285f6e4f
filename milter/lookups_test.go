package milter

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
	"github.com/miekg/dns"

	"mailgate/facts"
)

// testDNS is an in-process authoritative server (as facts' unit tests
// use): records in zone-file syntax, every other name NXDOMAIN.
type testDNS struct {
	mu  sync.Mutex
	rrs map[string][]dns.RR
}

func startDNS(t testing.TB, records ...string) string {
	t.Helper()
	d := &testDNS{rrs: map[string][]dns.RR{}}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		n := strings.ToLower(rr.Header().Name)
		d.rrs[n] = append(d.rrs[n], rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: d}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func (d *testDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	q := req.Question[0]
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	d.mu.Lock()
	rrs, ok := d.rrs[strings.ToLower(q.Name)]
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

// lookupConfig is a milter-only config running policies/facts/
// authentication.yaml with every lookup on, against the test DNS server.
func lookupConfig(t testing.TB, dnsAddr, extra string) string {
	return fmt.Sprintf(`dns: {servers: [%q], timeout: 2s}
dnsbl: {zen: zen.test}
auth_checks: {spf: true, dkim: true, dmarc: true, arc: true, authserv_id: mx.example.org}
%s`, dnsAddr, extra)
}

const arMessage = "From: Alice <alice@example.com>\r\n" +
	"To: bob@example.net\r\n" +
	"Subject: hello\r\n" +
	"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=forged@example.com\r\n" +
	"Authentication-Results: other.example; dkim=pass header.d=example.com\r\n" +
	"Message-ID: <1@example.com>\r\n" +
	"\r\n" +
	"Hello.\r\n"

// The milter runs the same lookups as the proxy, on the client the MTA
// names in {client_addr}: a client listed by the configured DNSBL is
// refused at connect by policies/facts/authentication.yaml; a message
// from an unlisted one is accepted with exactly one Authentication-Results
// field of our authserv_id (the forged one claiming it removed, the other
// server's kept), whose SPF result is the one the DNS gives.
func TestMilterLookupFacts(t *testing.T) {
	dnsAddr := startDNS(t,
		"66.2.0.192.zen.test. 60 IN A 127.0.0.2",
		"example.com. 60 IN TXT \"v=spf1 ip4:192.0.2.7 -all\"",
	)
	cfg := testConfig(t, []string{filepath.Join(repo(t), "policies", "facts", "authentication.yaml")}, lookupConfig(t, dnsAddr, ""))
	_, addr := startMilter(t, cfg)

	r := sendMsgFrom(t, addr, "192.0.2.66", "alice@example.com", []string{"bob@example.net"}, []byte(arMessage))
	if r.stage != "connect" || r.act.Type != gomilter.ActionRejectWithCode || r.act.SMTPCode != 554 ||
		!strings.Contains(r.act.SMTPReply, "5.7.1") {
		t.Fatalf("listed client: stopped at %q with %v, want refused at connect with 554 5.7.1", r.stage, r.act)
	}

	raw := []byte(arMessage)
	r = sendMsgFrom(t, addr, "192.0.2.7", "alice@example.com", []string{"bob@example.net"}, raw)
	if r.stage != "" || r.act.Type != gomilter.ActionAccept {
		t.Fatalf("unlisted client: stopped at %q: %v", r.stage, r.act)
	}
	fs, _ := deliver(t, raw, r)
	var ours, others []string
	for _, v := range fieldVals(fs, "Authentication-Results") {
		if strings.HasPrefix(strings.TrimSpace(v), "mx.example.org;") {
			ours = append(ours, v)
		} else {
			others = append(others, v)
		}
	}
	if len(ours) != 1 {
		t.Fatalf("%d Authentication-Results fields of mx.example.org, want 1: %q\n%s", len(ours), ours, modsString(r.mods))
	}
	if !strings.Contains(ours[0], "spf=pass") || !strings.Contains(ours[0], "dmarc=") {
		t.Errorf("Authentication-Results: %q, want spf=pass and a dmarc result", ours[0])
	}
	if strings.Contains(ours[0], "forged@") {
		t.Errorf("the forged field survived: %q", ours[0])
	}
	if len(others) != 1 || !strings.Contains(others[0], "other.example") {
		t.Errorf("other servers' fields: %q, want the one of other.example kept", others)
	}
}

// Our own mail that the rules rewrote (compliance-headers.yaml: a subject
// prefix and added fields) gets a DKIM-Signature inserted at the top,
// computed over the message as the MTA holds it after every action, and
// it verifies there; third-party mail rewritten the same way is not
// signed.
func TestMilterResignsOwnRewrittenMail(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	sg, err := facts.LoadSigner("example.org", "mg1", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	dnsAddr := startDNS(t, fmt.Sprintf("mg1._domainkey.example.org. 60 IN TXT %q", sg.PublicRecord()))
	cfg := testConfig(t, []string{"compliance-headers.yaml"}, lookupConfig(t, dnsAddr,
		fmt.Sprintf("dkim_sign: {domain: example.org, selector: mg1, key: %q}", keyFile)))
	_, addr := startMilter(t, cfg)
	res, err := facts.NewResolver(facts.ResolverConfig{Servers: []string{dnsAddr}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	own := []byte(strings.Replace(arMessage, "alice@example.com", "alice@example.org", 1))
	r := sendMsgFrom(t, addr, "192.0.2.7", "alice@example.org", []string{"bob@example.net"}, own)
	if r.stage != "" || r.act.Type != gomilter.ActionAccept {
		t.Fatalf("stopped at %q: %v", r.stage, r.act)
	}
	fs, body := deliver(t, own, r)
	if len(fs) == 0 || !strings.EqualFold(fs[0].name, "DKIM-Signature") {
		t.Fatalf("no DKIM-Signature at the top:\n%s", modsString(r.mods))
	}
	if got := fieldVals(fs, "Subject"); len(got) != 1 || !strings.Contains(got[0], "[EXT]") {
		t.Fatalf("not rewritten: Subject %q", got)
	}
	mc := facts.NewMessageChecker(context.Background(), res, true, false)
	mc.Write(canonical(fs, body))
	v := mc.Close()
	if len(v.DKIM) != 1 || v.DKIM[0].Result != "pass" || v.DKIM[0].Domain != "example.org" {
		t.Errorf("the delivered message's signature: %+v\n%s", v.DKIM, canonical(fs, body))
	}

	r = sendMsgFrom(t, addr, "192.0.2.7", "alice@example.com", []string{"bob@example.net"}, []byte(arMessage))
	fs, _ = deliver(t, []byte(arMessage), r)
	if got := fieldVals(fs, "DKIM-Signature"); len(got) != 0 {
		t.Errorf("third-party mail signed: %q", got)
	}
}
