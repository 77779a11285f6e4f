package milter

import (
	"bytes"
	"context"
	"net/netip"
	"strings"

	"mailgate/config"
	"mailgate/facts"
	"mailgate/mimeparse"
	"mailgate/rules"
	"mailgate/spool"
)

// The milter's side of the lookups (facts package, docs/policy.md "Lookup
// facts"), driven by the milter callbacks as proxy/lookups.go drives them
// from the SMTP dialogue: the client's at connect (the {client_addr}
// macro: the original client, never the MTA), SPF at MAIL with the HELO,
// DKIM and ARC fed the header and body events as they are spooled, DMARC
// at the end of the message. Relayed mail gets the Authentication-Results
// field (incoming ones claiming our authserv_id removed) through the same
// edit plan as the rules' edits, and our own rewritten mail a new DKIM
// signature inserted at the top.

// lookupSetup is what a configuration's lookups need: nil checker when no
// lookup section is configured.
type lookupSetup struct {
	checker *facts.Checker
	signer  *facts.Signer // dkim_sign; nil: no re-signing
}

// buildLookups makes the configuration's checker over the server's one
// resolver (its cache outlives reloads).
func (s *Server) buildLookups(cfg *config.Config, set *rules.Set) (lookupSetup, error) {
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
	ls.checker = facts.NewChecker(cfg.FactsConfig(r, s.log), facts.NeedsOf(set))
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
	s.resolver = r
	return r, nil
}

// newConn makes the connection's transaction object with its lookups as
// the enricher; the client's lookups start now.
func (ss *session) newConn() *rules.Conn {
	c := rules.NewConn(ss.stageEval(), ss.client, false)
	if ck := ss.rt.lookups.checker; ck != nil {
		ss.lookups = ck.New(context.Background())
		c.AddEnricher(ss.lookups)
		if ip, err := clientIP(ss.client.IP); err == nil {
			ss.lookups.StartClient(ip)
		}
	}
	return c
}

// mailLookups starts SPF at MAIL, while the recipients are given.
func (ss *session) mailLookups(from string) {
	if ss.lookups == nil || !ss.rt.cfg.AuthChecks.On() {
		return
	}
	if ip, err := clientIP(ss.client.IP); err == nil {
		ss.lookups.StartSPF(ip, ss.client.HELO, from)
	}
}

// tee feeds the spooled bytes to the message checks (DKIM, ARC) as they
// arrive: the message is not read a second time.
func (ss *session) tee(p []byte) {
	if ss.lookups == nil {
		return
	}
	if mc := ss.lookups.Message(); mc != nil {
		mc.Write(p)
	}
}

// endLookups forgets the transaction's lookups (end of message, abort, a
// new MAIL); the client's stay.
func (ss *session) endLookups() {
	if ss.lookups != nil {
		ss.lookups.EndTransaction()
	}
}

// authResults is the Authentication-Results header edits of a relayed
// message, nil when auth_checks is off.
func (ss *session) authResults() []rules.HeaderEdit {
	ac := ss.rt.cfg.AuthChecks
	if ss.lookups == nil || !ac.On() {
		return nil
	}
	ip, _ := clientIP(ss.client.IP)
	v := ss.lookups.AuthenticationResultsField(ac.AuthservID, ip, ss.client.HELO, ss.from)
	return facts.AuthResultsEdits(ac.AuthservID, v)
}

// needsParse reports whether the end of the message needs the parsed
// message for the lookups' edits even when no rule reads it.
func (ss *session) needsParse() bool {
	return ss.lookups != nil && ss.rt.cfg.AuthChecks.On()
}

// resign returns the DKIM-Signature insert for the delivered message when
// dkim_sign applies: the rules modified it (ruleEdits; the
// Authentication-Results field alone does not count) and its From domain
// is the signing domain. The signature is computed over the message as
// the MTA will hold it after the other actions: the spool rewritten with
// every edit (rules.Rewrite, the splicer the plan comes from); nil when
// no signature applies.
func (ss *session) resign(msg *mimeparse.Message, all, ruleEdits *rules.Edits) (*hdrOp, error) {
	sg := ss.rt.lookups.signer
	if sg == nil || ruleEdits.Empty() || msg == nil {
		return nil, nil
	}
	from := facts.HeaderFromDomain(msg.Header("From"))
	if !strings.EqualFold(from, sg.Domain) {
		return nil, nil
	}
	raw, err := ss.sp.Reader()
	if err != nil {
		return nil, err
	}
	out := spool.New(ss.rt.cfg.SpoolDir, ss.rt.cfg.Limits.SpoolMemory, ss.srv.budget)
	defer out.Close()
	if _, err := rules.Rewrite(out, raw, msg, all); err != nil {
		return nil, err
	}
	if out.Err() != nil {
		return nil, out.Err()
	}
	rd, err := out.Reader()
	if err != nil {
		return nil, err
	}
	sig, err := sg.SignDelivered(rd, from, ruleEdits)
	if err != nil || sig == "" {
		return nil, err
	}
	var f []mimeparse.Field
	if err := mimeparse.ScanHeader(bytes.NewReader([]byte(sig)), func(x mimeparse.Field) { f = append(f, x) }); err != nil {
		return nil, err
	}
	if len(f) != 1 {
		return nil, errUnmappable
	}
	v := strings.TrimRight(f[0].Raw, "\r\n")
	if !ss.leadSpc {
		v = strings.TrimPrefix(v, " ")
	}
	return &hdrOp{insert: true, index: 0, name: f[0].Name, value: v}, nil
}

// clientIP reads the client address the rules see ({client_addr}, an
// IPv6 one without its "IPv6:" prefix).
func clientIP(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	return a.Unmap(), err
}
