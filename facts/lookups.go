package facts

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"mailgate/rules"
)

// Config says which lookups run (from the config sections dns,
// auth_checks and dnsbl).
type Config struct {
	Resolver     *Resolver
	SkipNetworks []netip.Prefix    // clients never looked up (DNSBL, PTR)
	DNSBL        map[string]string // NAME → zone
	PTR          bool              // dns: configured (Client.PTR, Client.FCrDNS)
	SPF, DKIM    bool
	DMARC, ARC   bool
	Log          *slog.Logger // nil: no log
}

// Needs says which lookups the policy set reads, so that Enrich waits
// only for those (docs/policy.md "Lookup facts").
type Needs struct {
	Client  bool // PTR, FCrDNS, Blocklisted, DNSBL
	SPF     bool
	Message bool // DKIM, DMARC, ARC
}

// NeedsOf reads what set uses (nil: everything).
func NeedsOf(set *rules.Set) Needs {
	if set == nil {
		return Needs{true, true, true}
	}
	auth := set.Uses("Auth")
	return Needs{
		Client:  set.Uses("DNSBL") || set.UsesProperty("PTR") || set.UsesProperty("FCrDNS") || set.UsesProperty("Blocklisted"),
		SPF:     auth && (set.UsesProperty("SPF") || set.UsesProperty("DMARC") || set.UsesProperty("DMARCPolicy")),
		Message: auth && (set.UsesProperty("DKIM") || set.UsesProperty("DMARC") || set.UsesProperty("DMARCPolicy") || set.UsesProperty("ARC")),
	}
}

// Checker makes the per-connection Lookups. Safe for concurrent use.
type Checker struct {
	cfg   Config
	needs Needs
}

// NewChecker makes a Checker for a policy set's needs.
func NewChecker(cfg Config, needs Needs) *Checker { return &Checker{cfg: cfg, needs: needs} }

// Lookups are one connection's lookups: started as soon as their inputs
// exist (StartClient at connect or after XFORWARD/XCLIENT, StartSPF at
// MAIL, Message during DATA), waited for by Enrich. It is the
// rules.Enricher of the connection.
type Lookups struct {
	c   *Checker
	ctx context.Context

	mu        sync.Mutex
	clientKey netip.Addr
	client    *future[ClientResult]
	spfKey    [3]string
	spf       *future[spfResult]
	msg       *MessageChecker
	msgRes    *MessageResult
	dmarc     *DMARCResult
}

type spfResult struct{ result, domain string }

// future is a value computed in its own goroutine.
type future[T any] struct {
	done chan struct{}
	v    T
}

func start[T any](f func() T) *future[T] {
	ft := &future[T]{done: make(chan struct{})}
	go func() {
		ft.v = f()
		close(ft.done)
	}()
	return ft
}

func (f *future[T]) wait() T {
	<-f.done
	return f.v
}

// New starts a connection's lookups; ctx ends them (the session's end).
func (c *Checker) New(ctx context.Context) *Lookups { return &Lookups{c: c, ctx: ctx} }

func (l *Lookups) skip(ip netip.Addr) bool {
	for _, p := range l.c.cfg.SkipNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// StartClient starts the PTR and DNSBL lookups of the (original) client
// address; a new address replaces the old lookups.
func (l *Lookups) StartClient(ip netip.Addr) {
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.client != nil && l.clientKey == ip {
		return
	}
	l.clientKey = ip
	cfg := l.c.cfg
	if !ip.IsValid() || l.skip(ip) || (!cfg.PTR && len(cfg.DNSBL) == 0) || cfg.Resolver == nil {
		l.client = start(func() ClientResult { return ClientResult{} })
		return
	}
	zones := cfg.DNSBL
	ctx := l.ctx
	l.client = start(func() ClientResult {
		res := CheckClient(ctx, cfg.Resolver, ip, zones)
		if !cfg.PTR {
			res.PTR, res.FCrDNS = "", false
		}
		l.logErrors("client", res.Errors)
		return res
	})
}

// StartSPF starts the SPF check of a transaction (at MAIL).
func (l *Lookups) StartSPF(ip netip.Addr, helo, from string) {
	cfg := l.c.cfg
	key := [3]string{ip.String(), helo, from}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spf != nil && l.spfKey == key {
		return
	}
	l.spfKey = key
	if !(cfg.SPF || cfg.DMARC) || cfg.Resolver == nil || !ip.IsValid() {
		l.spf = start(func() spfResult { return spfResult{result: rules.ResultNone, domain: addrDomain(from)} })
		return
	}
	ctx := l.ctx
	l.spf = start(func() spfResult {
		r, d := CheckSPF(ctx, cfg.Resolver, ip.Unmap(), helo, from)
		return spfResult{r, d}
	})
}

// EndTransaction forgets the transaction's SPF and message results
// (after DATA or RSET); the client's stay.
func (l *Lookups) EndTransaction() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spf, l.spfKey = nil, [3]string{}
	if l.msg != nil && l.msgRes == nil {
		go l.msg.Close() // unblock its verifier
	}
	l.msg, l.msgRes, l.dmarc = nil, nil, nil
}

// Message returns the transaction's message checker, to be fed the
// message as it streams in (nil when no message check is on).
func (l *Lookups) Message() *MessageChecker {
	cfg := l.c.cfg
	if !(cfg.DKIM || cfg.DMARC || cfg.ARC) || cfg.Resolver == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msg == nil {
		l.msg = NewMessageChecker(l.ctx, cfg.Resolver, cfg.DKIM || cfg.DMARC, cfg.ARC)
		l.msg.prefetchDMARC = cfg.DMARC
	}
	return l.msg
}

func (l *Lookups) logErrors(what string, errs []string) {
	if l.c.cfg.Log == nil {
		return
	}
	for _, e := range errs {
		l.c.cfg.Log.Info("lookup temperror", "lookup", what, "error", e)
	}
}

// Enrich implements rules.Enricher: it starts what has not been started
// from the facts (check, tests) and waits for what the set reads.
func (l *Lookups) Enrich(stage rules.Stage, f *rules.Facts) {
	needs := l.c.needs
	ip, _ := netip.ParseAddr(f.Client.IP)
	if needs.Client {
		l.StartClient(ip)
		l.mu.Lock()
		cf := l.client
		l.mu.Unlock()
		res := cf.wait()
		f.Client.PTR, f.Client.FCrDNS = res.PTR, res.FCrDNS
		f.DNSBL = res.DNSBL
		f.Client.Blocklisted = rules.Blocklisted(res.DNSBL)
	}
	if stage < rules.StageMail {
		return
	}
	if needs.SPF || needs.Message {
		f.Auth.SPF = l.spfResult(ip, f.Client.HELO, f.Envelope.From).result
	}
	if stage < rules.StageData || !needs.Message {
		return
	}
	a := l.AuthResults(ip, f.Client.HELO, f.Envelope.From)
	f.Auth.DKIM, f.Auth.DMARC, f.Auth.DMARCPolicy, f.Auth.ARC = a.DKIM, a.DMARC, a.DMARCPolicy, a.ARC
}

func (l *Lookups) spfResult(ip netip.Addr, helo, from string) spfResult {
	l.StartSPF(ip, helo, from)
	l.mu.Lock()
	sf := l.spf
	l.mu.Unlock()
	return sf.wait()
}

// AuthResults ends the message checks and returns every auth fact (for
// the rules and for the Authentication-Results field). Checks that are
// off read none.
func (l *Lookups) AuthResults(ip netip.Addr, helo, from string) rules.Auth {
	cfg := l.c.cfg
	spf := l.spfResult(ip, helo, from)
	a := rules.Auth{SPF: spf.result, DMARC: rules.ResultNone, ARC: rules.ResultNone}
	if !cfg.SPF {
		a.SPF = rules.ResultNone
	}
	mc := l.Message()
	if mc == nil {
		return a
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msgRes == nil {
		r := mc.Close()
		AlignDKIM(r.DKIM, r.FromDomain)
		l.msgRes = &r
		l.logErrors("message", r.Errors)
		if cfg.DMARC {
			d := CheckDMARC(l.ctx, cfg.Resolver, r.FromDomain, spf.result, spf.domain, r.DKIM)
			l.dmarc = &d
			if d.Err != "" {
				l.logErrors("dmarc", []string{d.Err})
			}
		}
	}
	if cfg.DKIM {
		a.DKIM = l.msgRes.DKIM
	}
	if cfg.ARC {
		a.ARC = l.msgRes.ARC
	}
	if l.dmarc != nil {
		a.DMARC, a.DMARCPolicy = l.dmarc.Result, l.dmarc.Policy
	}
	return a
}

// AuthenticationResultsField is the value of the Authentication-Results
// field for the transaction (the checks that are on, computed as for the
// rules; waits for them).
func (l *Lookups) AuthenticationResultsField(authservID string, ip netip.Addr, helo, from string) string {
	a := l.AuthResults(ip, helo, from)
	cfg := l.c.cfg
	in := AuthInputs{MailFrom: from, HELO: helo, SPF: cfg.SPF, DKIM: cfg.DKIM, DMARC: cfg.DMARC, ARC: cfg.ARC}
	l.mu.Lock()
	if l.msgRes != nil {
		in.FromDomain = l.msgRes.FromDomain
	}
	l.mu.Unlock()
	return AuthenticationResults(authservID, a, in)
}
