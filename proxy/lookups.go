package proxy

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"

	"mailgate/config"
	"mailgate/facts"
	"mailgate/mimeparse"
	"mailgate/rules"
	"mailgate/spool"
)

// The session's side of the lookups (facts package, docs/policy.md
// "Lookup facts"): they start as soon as their inputs exist and the rules
// wait only for what they read (rules.Enricher); relayed mail gets the
// Authentication-Results field, and our own rewritten mail a new DKIM
// signature.

// lookupSetup is what a configuration's lookups need, built with its
// liveConfig: nil checker when no lookup section is configured.
type lookupSetup struct {
	checker *facts.Checker
	signer  *facts.Signer // dkim_sign; nil: no re-signing
}

// buildLookups makes the configuration's checker over the server's one
// resolver (made with the first configuration that needs it: its cache
// and metrics outlive reloads).
func (s *Server) buildLookups(cfg *config.Config, eng Engine) (lookupSetup, error) {
	var ls lookupSetup
	sg, err := cfg.Signer()
	if err != nil {
		return ls, err
	}
	ls.signer = sg
	if !cfg.HasLookups() {
		return ls, nil
	}
	r, err := s.resolverFor(cfg)
	if err != nil {
		return ls, err
	}
	needs := facts.Needs{}
	if ne, ok := eng.(interface{ LookupNeeds() facts.Needs }); ok {
		needs = ne.LookupNeeds()
	}
	ls.checker = facts.NewChecker(cfg.FactsConfig(r, s.log), needs)
	return ls, nil
}

// resolverFor returns the server's resolver, made on first use.
func (s *Server) resolverFor(cfg *config.Config) (*facts.Resolver, error) {
	s.resolverMu.Lock()
	defer s.resolverMu.Unlock()
	if s.resolver != nil {
		return s.resolver, nil
	}
	r, err := facts.NewResolver(cfg.ResolverConfig())
	if err != nil {
		return nil, err
	}
	for _, c := range r.Collectors() {
		s.metrics.reg.MustRegister(c)
	}
	s.resolver = r
	return r, nil
}

// LookupNeeds says which lookups the set's rules read.
func (e rulesEngine) LookupNeeds() facts.Needs { return facts.NeedsOf(e.set) }

// startLookups gives the session its lookups: the client's start now,
// unless a trusted forwarder will name the original client.
func (s *Session) startLookups() {
	if s.rt.lookups.checker == nil {
		return
	}
	s.lookups = s.rt.lookups.checker.New(context.Background())
	s.pol.AddEnricher(s.lookups)
	if !s.trusted {
		s.lookups.StartClient(s.remote.Addr())
	}
}

// clientChanged restarts the client's lookups for the client that
// XFORWARD or XCLIENT named.
func (s *Session) clientChanged() {
	if s.lookups == nil {
		return
	}
	if ip, err := parseClientIP(s.client.IP); err == nil {
		s.lookups.StartClient(ip)
	}
}

// mailLookups starts SPF at MAIL, while the recipients are given.
func (s *Session) mailLookups(from string) {
	if s.lookups == nil || !s.rt.cfg.AuthChecks.On() {
		return
	}
	if ip, err := parseClientIP(s.client.IP); err == nil {
		s.lookups.StartSPF(ip, s.client.HELO, from)
	}
}

// messageTee is where the message's bytes go besides the spool, as they
// arrive (DKIM and ARC verification); nil when no check reads them.
func (s *Session) messageTee() io.Writer {
	if s.lookups == nil {
		return nil
	}
	if mc := s.lookups.Message(); mc != nil {
		return mc
	}
	return nil
}

// teeWriter writes to the spool and to the checks; the spool's result
// is the one that counts.
type teeWriter struct {
	sp  io.Writer
	tee io.Writer
}

func (w teeWriter) Write(p []byte) (int, error) {
	w.tee.Write(p)
	return w.sp.Write(p)
}

// endLookups forgets the transaction's lookups (after DATA, RSET).
func (s *Session) endLookups() {
	if s.lookups != nil {
		s.lookups.EndTransaction()
	}
}

// authResults is the Authentication-Results header edits of a relayed
// message (the checks that are on; incoming fields claiming our
// authserv-id removed), nil when auth_checks is off.
func (s *Session) authResults() []rules.HeaderEdit {
	ac := s.rt.cfg.AuthChecks
	if s.lookups == nil || !ac.On() {
		return nil
	}
	ip, _ := parseClientIP(s.client.IP)
	v := s.lookups.AuthenticationResultsField(ac.AuthservID, ip, s.client.HELO, s.tx.from)
	return facts.AuthResultsEdits(ac.AuthservID, v)
}

// needsParse reports whether relaying needs the parsed message for the
// lookups' edits (the Authentication-Results field) even when no rule
// reads it.
func (s *Session) needsParse() bool {
	return s.lookups != nil && s.rt.cfg.AuthChecks.On()
}

// resign re-signs the rewritten message when dkim_sign applies: the rules
// modified it (ruleEdits; the Authentication-Results field alone does not
// count) and its From domain is the signing domain. It rewrites into a
// spool of its own, signs that, and returns the signed message to relay;
// nil when no signature applies.
func (s *Session) resign(body io.Reader, msg *mimeparse.Message, all, ruleEdits *rules.Edits) (io.Reader, func(), error) {
	sg := s.rt.lookups.signer
	if sg == nil || ruleEdits.Empty() || msg == nil {
		return nil, nil, nil
	}
	from := facts.HeaderFromDomain(msg.Header("From"))
	if !strings.EqualFold(from, sg.Domain) {
		return nil, nil, nil
	}
	out := spool.New(s.rt.cfg.SpoolDir, s.rt.cfg.Limits.SpoolMemory, s.srv.spoolBudget)
	if _, err := rules.Rewrite(out, body, msg, all); err != nil {
		out.Close()
		return nil, nil, err
	}
	if out.Err() != nil {
		out.Close()
		return nil, nil, out.Err()
	}
	rd, err := out.Reader()
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	sig, err := sg.SignDelivered(rd, from, ruleEdits)
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	rd, err = out.Reader()
	if err != nil {
		out.Close()
		return nil, nil, err
	}
	return io.MultiReader(bytes.NewReader([]byte(sig)), rd), func() { out.Close() }, nil
}

// parseClientIP reads the client address the rules see.
func parseClientIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}
