package proxy

import (
	"context"
	"encoding/base64"
	"fmt"
	"mailgate/internal/smtpline"
	"mailgate/upstream"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// handler runs one command and says what follows (outcome.go); only the
// commands that read more from the client (DATA, BDAT, AUTH) or change
// the connection (STARTTLS) write to it themselves.
type handler func(s *Session, ctx context.Context, arg string) outcome

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"EHLO": (*Session).cmdEhlo, "HELO": (*Session).cmdHelo, "MAIL": (*Session).cmdMail,
		"RCPT": (*Session).cmdRcpt, "DATA": (*Session).cmdData, "RSET": (*Session).cmdRset,
		"NOOP": (*Session).cmdNoop, "QUIT": (*Session).cmdQuit, "HELP": (*Session).cmdHelp,
		"VRFY": (*Session).cmdVrfy, "EXPN": (*Session).cmdExpn, "STARTTLS": (*Session).cmdStarttls,
		"XFORWARD": (*Session).cmdXforward, "XCLIENT": (*Session).cmdXclient, "AUTH": (*Session).cmdAuth,
		"BDAT": (*Session).cmdBdat,
	}
}

// dispatch runs one command line and observes its duration by command and
// reply code.
func (s *Session) dispatch(ctx context.Context, line string) {
	cmd, ok := parseCommand(line)
	h := handlers[cmd.verb]
	if !ok || h == nil {
		// The line may be a SASL response sent after a refused AUTH:
		// its text is never logged (logVerb).
		s.log.Debug("bad command", "verb", logVerb(line), "bytes", len(line))
		s.act(ctx, fail(replyBadCommand))
		return
	}
	t0 := time.Now()
	s.act(ctx, h(s, ctx, cmd.arg))
	ecode := ""
	if e := s.last.Enhanced; e != [3]int{} {
		ecode = fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
	}
	s.srv.metrics.commandDuration.WithLabelValues(cmd.verb, strconv.Itoa(s.last.Code), ecode).Observe(time.Since(t0).Seconds())
}

func (s *Session) cmdHelo(ctx context.Context, arg string) outcome { return s.hello(ctx, arg, false) }
func (s *Session) cmdEhlo(ctx context.Context, arg string) outcome { return s.hello(ctx, arg, true) }

// hello handles HELO and EHLO (RFC 5321 §4.1.1.1); both reset the
// transaction.
func (s *Session) hello(ctx context.Context, arg string, esmtp bool) outcome {
	name := strings.TrimSpace(arg)
	if name == "" || strings.ContainsAny(name, " \t") {
		return fail(replyBadSyntax)
	}
	if s.tx != nil {
		s.act(ctx, outcome{silent: true, end: verdictReset, rset: true})
	}
	s.helo, s.esmtp = name, esmtp
	s.client.HELO = name
	if d := s.pol.Helo(name); d.Refused() {
		s.helo, s.client.HELO = "", ""
		s.pol.UpdateClient(s.client)
		return say(withEnhanced(d.Reply))
	}
	if !esmtp {
		return outcome{reply: Reply{Code: 250, Text: s.rt.cfg.Hostname}, raw: true}
	}
	lines := []string{s.rt.cfg.Hostname, "PIPELINING"}
	if n := s.rt.cfg.Limits.MessageSize; n > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(n, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	if s.rt.tls != nil && !s.tls {
		lines = append(lines, "STARTTLS")
	}
	lines = append(lines, "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING")
	if s.rt.cfg.Auth == "relay" && s.tls {
		lines = append(lines, "AUTH PLAIN LOGIN")
	}
	if s.trusted {
		lines = append(lines, "XFORWARD NAME ADDR PORT PROTO HELO", "XCLIENT NAME ADDR PORT PROTO HELO")
	}
	return outcome{reply: Reply{Code: 250, Text: strings.Join(lines, "\n")}, raw: true}
}

func (s *Session) cmdMail(ctx context.Context, arg string) outcome {
	switch {
	case s.helo == "":
		return fail(replyNeedHelo)
	case s.tx != nil:
		return fail(replyNestedMail)
	}
	pa, bad := parsePath(arg, "FROM:")
	if bad != nil {
		return fail(*bad)
	}
	mp, bad := checkMailParams(pa.Params)
	if bad != nil {
		return fail(*bad)
	}
	if !mp.SMTPUTF8 && !isASCII(pa.Addr) {
		return fail(replySMTPUTF8)
	}
	if max := s.rt.cfg.Limits.MessageSize; max > 0 && mp.Size > max {
		return say(replyTooBig)
	}
	// The transaction object runs a trusted forwarder's deferred connect
	// and helo stages first, with the client its XFORWARD/XCLIENT named.
	s.mailLookups(pa.Addr)
	pol, d := s.pol.Mail(pa.Addr, int(mp.Size), mp.SMTPUTF8)
	s.tx = &transaction{start: time.Now(), from: pa.Addr, params: pa.Params, mp: mp, pol: pol}
	if d.Refused() {
		return endWith(verdictOf(d), withEnhanced(d.Reply))
	}
	reused := s.up != nil
	if err := s.ensureUpstream(ctx); err != nil {
		s.log.Warn("upstream unavailable", "err", err)
		return endWith(verdictUpstreamDown, replyUpstreamDown)
	}
	rp, err := s.up.Mail(ctx, pa.Addr, pa.Params, s.clientInfo())
	if err != nil && reused {
		// The kept upstream session may have timed out while the client
		// was idle: one new connection is worth a try.
		s.log.Info("upstream session lost, reconnecting", "err", err)
		s.closeUpstream(true)
		if err = s.ensureUpstream(ctx); err == nil {
			rp, err = s.up.Mail(ctx, pa.Addr, pa.Params, s.clientInfo())
		}
	}
	if err != nil {
		s.upstreamFailed(err)
		return endWith(verdictUpstreamFailed, replyUpstreamFailed)
	}
	if rp.Code/100 != 2 {
		s.tx.upstream = rp
		return endWith(verdictUpstreamRefused, rp)
	}
	return say(rp)
}

func (s *Session) cmdRcpt(ctx context.Context, arg string) outcome {
	if s.tx == nil {
		return fail(replyNeedMail)
	}
	pa, bad := parsePath(arg, "TO:")
	if bad != nil {
		return fail(*bad)
	}
	if bad := checkRcptParams(pa.Params); bad != nil {
		return fail(*bad)
	}
	if pa.Addr == "" {
		return fail(replyBadAddress)
	}
	if !s.tx.mp.SMTPUTF8 && !isASCII(pa.Addr) {
		return fail(replySMTPUTF8)
	}
	if max := s.rt.cfg.Limits.Recipients; max > 0 && len(s.tx.rcpts) >= max {
		if !s.tx.rcptLimitLogged {
			s.tx.rcptLimitLogged = true // once per transaction, not once per refused RCPT
			s.log.Warn("too many recipients", "limit", max)
		}
		return say(replyTooManyRcpts)
	}
	// The policy decides this recipient only; the others go on.
	if d := s.tx.pol.Rcpt(pa.Addr); d.Refused() {
		return say(withEnhanced(d.Reply))
	}
	if s.up == nil {
		return say(replyUpstreamFailed)
	}
	rp, err := s.up.Rcpt(ctx, pa.Addr, pa.Params)
	if err != nil {
		s.upstreamFailed(err)
		return endWith(verdictUpstreamFailed, replyUpstreamFailed)
	}
	if rp.Code/100 == 2 {
		s.tx.rcpts = append(s.tx.rcpts, rcptTo{addr: pa.Addr, params: pa.Params})
		s.tx.pol.AddRcpt(pa.Addr)
	} else {
		s.tx.upstream = rp // the log names the last refusal
	}
	return say(rp)
}

func (s *Session) cmdRset(ctx context.Context, arg string) outcome {
	if s.tx != nil {
		return outcome{reply: replyReset, end: verdictReset, rset: true}
	}
	return say(replyReset)
}

func (s *Session) cmdNoop(ctx context.Context, arg string) outcome { return say(replyOK) }

func (s *Session) cmdQuit(ctx context.Context, arg string) outcome {
	if s.tx != nil {
		s.endTx(verdictQuit, Reply{}, nil)
	}
	s.closeUpstream(false)
	return outcome{reply: replyBye, quit: true}
}

func (s *Session) cmdHelp(ctx context.Context, arg string) outcome { return say(replyHelp) }
func (s *Session) cmdVrfy(ctx context.Context, arg string) outcome { return say(replyVRFY) }
func (s *Session) cmdExpn(ctx context.Context, arg string) outcome { return say(replyEXPN) }

func (s *Session) cmdStarttls(ctx context.Context, arg string) outcome {
	switch {
	case s.rt.tls == nil:
		return fail(replyNoTLS)
	case s.tls:
		return fail(replyTLSAlready)
	case arg != "":
		return fail(replyBadSyntax)
	}
	if s.tx != nil {
		s.act(ctx, outcome{silent: true, end: verdictReset, rset: true})
	}
	s.reply(replyReadyTLS)
	if err := s.startTLS(s.rt.tls); err != nil {
		s.log.Info("TLS handshake failed", "err", err)
		return outcome{silent: true, quit: true}
	}
	return outcome{silent: true}
}

// cmdXforward takes the original client's attributes from a trusted
// forwarder (Postfix XFORWARD_README); they apply to the policies, the logs
// and the upstream's XFORWARD.
func (s *Session) cmdXforward(ctx context.Context, arg string) outcome {
	attrs, o := s.forwardedAttrs(arg)
	if o != nil {
		return *o
	}
	s.applyAttrs(attrs)
	return say(replyOK)
}

// cmdXclient is XFORWARD's sibling that also restarts the session (Postfix
// XCLIENT_README): the reply is a new greeting.
func (s *Session) cmdXclient(ctx context.Context, arg string) outcome {
	attrs, o := s.forwardedAttrs(arg)
	if o != nil {
		return *o
	}
	s.reset()
	// XCLIENT names a new client: what it does not give is not carried
	// over from an earlier XFORWARD or XCLIENT, as on a new connection
	// from the forwarder.
	s.client.IP, s.client.Port = s.remote.Addr().String(), int(s.remote.Port())
	s.clientName = ""
	s.applyAttrs(attrs)
	return outcome{reply: Reply{Code: 220, Text: s.rt.cfg.Hostname + " ESMTP mailgate"}, raw: true}
}

// forwardedAttrs checks an XFORWARD or XCLIENT command (a trusted
// forwarder, outside a transaction, well formed) and returns its
// attributes, or the outcome of a refusal.
func (s *Session) forwardedAttrs(arg string) (map[string]string, *outcome) {
	refused := func(rp Reply) (map[string]string, *outcome) {
		o := fail(rp)
		return nil, &o
	}
	switch {
	case !s.trusted:
		return refused(replyNotTrusted)
	case s.tx != nil:
		return refused(replyNestedMail)
	}
	attrs, ok := xforwardAttrs(arg)
	if !ok {
		return refused(replyBadSyntax)
	}
	if a, ok := attrs["ADDR"]; ok && knownAttr(a) {
		if _, ok := forwardedIP(a); !ok {
			// Policies, logs and the upstream's XCLIENT would take it
			// for an address.
			s.log.Warn("forwarder sent an ADDR that is not an IP address, refused", "addr", a)
			return refused(replyBadSyntax)
		}
	}
	return attrs, nil
}

// knownAttr says whether an XFORWARD/XCLIENT value gives something: Postfix
// sends [UNAVAILABLE] and [TEMPUNAVAIL] for what it does not know.
func knownAttr(v string) bool { return v != "" && v != "[UNAVAILABLE]" && v != "[TEMPUNAVAIL]" }

// forwardedIP parses an XFORWARD/XCLIENT ADDR: an IPv4 or IPv6 address,
// the latter with or without Postfix's "IPV6:" prefix; no zone.
func forwardedIP(v string) (string, bool) {
	if len(v) > 5 && strings.EqualFold(v[:5], "IPV6:") {
		v = v[5:]
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		return "", false
	}
	return ip.Unmap().String(), true
}

func (s *Session) applyAttrs(attrs map[string]string) {
	known := knownAttr
	for k, v := range attrs {
		switch k {
		case "ADDR":
			if ip, ok := forwardedIP(v); ok && known(v) {
				s.client.IP = ip
			}
		case "PORT":
			if n, err := strconv.Atoi(v); err == nil && known(v) {
				s.client.Port = n
			}
		case "NAME":
			if known(v) {
				s.clientName = v
			}
		case "HELO":
			if known(v) {
				s.client.HELO = v
			}
		}
	}
	s.log = s.srv.log.With("session", s.id, "client", s.remote.String(), "orig_client", s.client.IP)
	if s.up != nil && s.rt.cfg.XClient {
		// XCLIENT goes upstream once per upstream session: start a new
		// one for the new client.
		s.closeUpstream(false)
	}
	// A new client: the connect and helo stages run again for it at the
	// next MAIL, and nothing the previous one was granted stays.
	s.pol.SetClient(s.client)
	s.clientChanged()
}

// cmdAuth relays the SASL exchange to the upstream (auth: relay), which
// decides; it is only offered and accepted after STARTTLS (RFC 4954 §4).
// Only well-formed responses go upstream (validSASL), only to an upstream
// that may carry credentials (CredentialsSafe). The exchange is never
// logged: refusals log its length only.
func (s *Session) cmdAuth(ctx context.Context, arg string) outcome {
	switch {
	case s.rt.cfg.Auth != "relay":
		return fail(replyAuthNotAvail)
	case !s.tls:
		return fail(replyAuthNeedTLS)
	case s.helo == "":
		return fail(replyNeedHelo)
	case s.tx != nil || s.client.AuthUser != "":
		return fail(r(503, 5, 5, 1, "Error: AUTH not allowed now"))
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		return fail(r(504, 5, 5, 4, "Error: unsupported authentication mechanism"))
	}
	if hasInitial && !validSASL(initial, true) {
		s.log.Info("AUTH refused: malformed initial response", "bytes", len(initial))
		return fail(replyAuthBadResponse)
	}
	if err := s.ensureUpstream(ctx); err != nil {
		s.log.Warn("upstream unavailable", "err", err)
		return say(replyUpstreamDown)
	}
	ar, ok := s.up.(authRelayer)
	if !ok {
		return fail(replyAuthNotAvail)
	}
	if !ar.CredentialsSafe() {
		s.log.Warn("AUTH refused: the upstream connection is neither loopback nor TLS with a verified certificate",
			"upstream", s.rt.cfg.Upstream)
		return say(replyAuthUnsafe)
	}
	cmd := "AUTH " + mech
	var responses []string
	if hasInitial {
		cmd += " " + initial
		if initial != "=" {
			responses = append(responses, initial)
		}
	}
	rp, err := ar.Raw(ctx, cmd)
	for i := 0; err == nil && rp.Code == 334; i++ {
		if i == maxSASLRounds {
			s.log.Warn("AUTH refused: the upstream's exchange does not end", "rounds", i)
			return s.cancelAuth(ctx, ar)
		}
		s.replyRaw(Reply{Code: 334, Text: rp.Text})
		if err := s.bw.Flush(); err != nil {
			return outcome{silent: true, quit: true}
		}
		line, rerr := smtpline.ReadLine(s.br, maxSASLResponse)
		switch {
		case rerr == smtpline.ErrLineTooLong:
			s.log.Info("AUTH refused: response too long", "limit", maxSASLResponse)
			return s.cancelAuth(ctx, ar)
		case rerr != nil:
			o := s.readFailed(rerr, "reading AUTH response")
			o.quit = true
			return o
		case !validSASL(line, false):
			s.log.Info("AUTH refused: malformed response", "bytes", len(line))
			return s.cancelAuth(ctx, ar)
		}
		responses = append(responses, line)
		rp, err = ar.Raw(ctx, line)
	}
	if err != nil {
		s.upstreamFailed(err)
		return say(replyUpstreamFailed)
	}
	if rp.Code != 235 {
		return fail(rp)
	}
	s.client.AuthUser = saslUser(mech, responses)
	s.pol.UpdateClient(s.client)
	s.log.Info("authenticated", "user", s.client.AuthUser)
	return say(rp)
}

// maxSASLRounds bounds the challenges of one AUTH exchange (PLAIN needs
// one, LOGIN two).
const maxSASLRounds = 10

// cancelAuth ends an upstream exchange the client's response may not go
// to: "*" cancels it (RFC 4954 §4, the upstream answers 501); an upstream
// that does not end it is dropped, so no later line can continue it. The
// client gets 501 5.5.2.
func (s *Session) cancelAuth(ctx context.Context, ar authRelayer) outcome {
	rp, err := ar.Raw(ctx, "*")
	if err == nil && rp.Code/100 == 3 {
		err = fmt.Errorf("%w: AUTH cancel answered %d", upstream.ErrFailed, rp.Code)
	}
	if err != nil {
		s.upstreamFailed(err)
	}
	return fail(replyAuthBadResponse)
}

// authRelayer is the upstream capability AUTH relaying needs (docs/DEVELOPING.md
// rule 17: found by type assertion).
type authRelayer interface {
	Raw(ctx context.Context, line string) (Reply, error)
	CredentialsSafe() bool
}

// saslUser takes the user name from PLAIN's or LOGIN's first response.
func saslUser(mech string, responses []string) string {
	if len(responses) == 0 {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(responses[0])
	if err != nil {
		return ""
	}
	if mech == "PLAIN" {
		parts := strings.Split(string(b), "\x00")
		if len(parts) == 3 {
			return parts[1]
		}
		return ""
	}
	return string(b)
}
