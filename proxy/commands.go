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

	"mailgate/rules"
)

type handler func(s *Session, ctx context.Context, arg string)

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
		s.reply(replyBadCommand)
		s.countError()
		return
	}
	t0 := time.Now()
	h(s, ctx, cmd.arg)
	ecode := ""
	if e := s.last.Enhanced; e != [3]int{} {
		ecode = fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
	}
	s.srv.metrics.commandDuration.WithLabelValues(cmd.verb, strconv.Itoa(s.last.Code), ecode).Observe(time.Since(t0).Seconds())
}

// errReply answers an error reply and counts it against the session.
func (s *Session) errReply(rp Reply) {
	s.reply(rp)
	s.countError()
}

func (s *Session) cmdHelo(ctx context.Context, arg string) { s.hello(ctx, arg, false) }
func (s *Session) cmdEhlo(ctx context.Context, arg string) { s.hello(ctx, arg, true) }

// hello handles HELO and EHLO (RFC 5321 §4.1.1.1); both reset the
// transaction.
func (s *Session) hello(ctx context.Context, arg string, esmtp bool) {
	name := strings.TrimSpace(arg)
	if name == "" || strings.ContainsAny(name, " \t") {
		s.errReply(replyBadSyntax)
		return
	}
	if s.tx != nil {
		s.upstreamRset(ctx)
		s.endTx("reset", Reply{}, nil)
	}
	s.helo, s.esmtp = name, esmtp
	s.client.HELO = name
	if !s.trusted {
		if rp, ok := s.evalPre(rules.StageHelo); !ok {
			s.helo, s.client.HELO = "", ""
			s.reply(rp)
			return
		}
	}
	if !esmtp {
		s.replyRaw(Reply{Code: 250, Text: s.rt.cfg.Hostname})
		return
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
	s.replyRaw(Reply{Code: 250, Text: strings.Join(lines, "\n")})
}

func (s *Session) cmdMail(ctx context.Context, arg string) {
	switch {
	case s.helo == "":
		s.errReply(replyNeedHelo)
		return
	case s.tx != nil:
		s.errReply(replyNestedMail)
		return
	}
	pa, bad := parsePath(arg, "FROM:")
	if bad != nil {
		s.errReply(*bad)
		return
	}
	mp, bad := checkMailParams(pa.Params)
	if bad != nil {
		s.errReply(*bad)
		return
	}
	if !mp.SMTPUTF8 && !isASCII(pa.Addr) {
		s.errReply(replySMTPUTF8)
		return
	}
	if max := s.rt.cfg.Limits.MessageSize; max > 0 && mp.Size > max {
		s.reply(replyTooBig)
		return
	}
	s.tx = &transaction{start: time.Now(), from: pa.Addr, params: pa.Params, mp: mp}
	if s.trusted && !s.preDone {
		// A forwarder's connect and helo stages run now, with the
		// attributes its XFORWARD gave.
		s.preDone = true
		for _, st := range []rules.Stage{rules.StageConnect, rules.StageHelo} {
			if rp, ok := s.evalPre(st); !ok {
				s.reply(rp)
				s.endTx(verdictName(rp), rp, nil)
				return
			}
		}
	}
	if s.preVerdict != nil {
		s.tx.final = s.preVerdict
	}
	if s.acceptAll {
		s.tx.accepted = true
	}
	if rp, ok := s.evalTx(rules.StageMail, ""); !ok {
		s.reply(rp)
		s.endTx(verdictName(rp), rp, nil)
		return
	}
	reused := s.up != nil
	if err := s.ensureUpstream(ctx); err != nil {
		s.log.Warn("upstream unavailable", "err", err)
		s.reply(replyUpstreamDown)
		s.endTx("upstream-down", replyUpstreamDown, nil)
		return
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
		s.reply(replyUpstreamFailed)
		s.endTx("upstream-failed", replyUpstreamFailed, nil)
		return
	}
	s.reply(rp)
	if rp.Code/100 != 2 {
		s.tx.upstream = rp
		s.endTx("upstream-refused", rp, nil)
	}
}

// verdictName names a refusing reply's verdict for the log.
func verdictName(rp Reply) string {
	if rp.Temporary() {
		return "tempfail"
	}
	return "reject"
}

// evalTx runs a mail or rcpt stage within the transaction: false with the
// reply when the policy refuses.
func (s *Session) evalTx(stage rules.Stage, rcpt string) (Reply, bool) {
	if s.eval == nil || s.tx.accepted {
		return Reply{}, true
	}
	v := s.evaluate(stage, &rules.Facts{Client: s.client, Envelope: s.envelope(0), Rcpt: rcpt})
	mergeEdits(&s.tx.edits, &v.Edits)
	switch v.Action {
	case rules.ActionAccept:
		s.tx.accepted = true
	case rules.ActionReject, rules.ActionTempfail:
		return verdictReply(v), false
	case rules.ActionDiscard, rules.ActionQuarantine:
		if s.tx.final == nil {
			vv := v
			s.tx.final = &vv
		}
	}
	return Reply{}, true
}

func mergeEdits(dst, src *rules.Edits) {
	dst.Headers = append(dst.Headers, src.Headers...)
	if src.SubjectPrefix != "" {
		dst.SubjectPrefix = src.SubjectPrefix
	}
	dst.Strip = append(dst.Strip, src.Strip...)
	dst.RcptAdd = append(dst.RcptAdd, src.RcptAdd...)
	dst.RcptRemove = append(dst.RcptRemove, src.RcptRemove...)
}

// envelope describes the transaction so far.
func (s *Session) envelope(size int) rules.Envelope {
	tx := s.tx
	e := rules.Envelope{From: tx.from, FromDomain: domainOf(tx.from), Size: size, SMTPUTF8: tx.mp.SMTPUTF8}
	if size == 0 {
		e.Size = int(tx.mp.Size)
	}
	for _, r := range tx.rcpts {
		e.Rcpts = append(e.Rcpts, r.addr)
		e.RcptDomains = append(e.RcptDomains, domainOf(r.addr))
	}
	return e
}

func (s *Session) cmdRcpt(ctx context.Context, arg string) {
	if s.tx == nil {
		s.errReply(replyNeedMail)
		return
	}
	pa, bad := parsePath(arg, "TO:")
	if bad != nil {
		s.errReply(*bad)
		return
	}
	if bad := checkRcptParams(pa.Params); bad != nil {
		s.errReply(*bad)
		return
	}
	if pa.Addr == "" {
		s.errReply(replyBadAddress)
		return
	}
	if !s.tx.mp.SMTPUTF8 && !isASCII(pa.Addr) {
		s.errReply(replySMTPUTF8)
		return
	}
	if max := s.rt.cfg.Limits.Recipients; max > 0 && len(s.tx.rcpts) >= max {
		if !s.tx.rcptLimitLogged {
			s.tx.rcptLimitLogged = true // once per transaction, not once per refused RCPT
			s.log.Warn("too many recipients", "limit", max)
		}
		s.reply(replyTooManyRcpts)
		return
	}
	if rp, ok := s.evalTx(rules.StageRcpt, pa.Addr); !ok {
		s.reply(rp)
		return
	}
	if s.up == nil {
		s.reply(replyUpstreamFailed)
		return
	}
	rp, err := s.up.Rcpt(ctx, pa.Addr, pa.Params)
	if err != nil {
		s.upstreamFailed(err)
		s.reply(replyUpstreamFailed)
		s.endTx("upstream-failed", replyUpstreamFailed, nil)
		return
	}
	if rp.Code/100 == 2 {
		s.tx.rcpts = append(s.tx.rcpts, rcptTo{addr: pa.Addr, params: pa.Params})
	} else {
		s.tx.upstream = rp // the log names the last refusal
	}
	s.reply(rp)
}

func (s *Session) cmdRset(ctx context.Context, arg string) {
	if s.tx != nil {
		s.upstreamRset(ctx)
		s.endTx("reset", Reply{}, nil)
	}
	s.reply(replyReset)
}

func (s *Session) cmdNoop(ctx context.Context, arg string) { s.reply(replyOK) }

func (s *Session) cmdQuit(ctx context.Context, arg string) {
	if s.tx != nil {
		s.endTx("quit", Reply{}, nil)
	}
	s.closeUpstream(false)
	s.reply(replyBye)
	s.quit = true
}

func (s *Session) cmdHelp(ctx context.Context, arg string) { s.reply(replyHelp) }
func (s *Session) cmdVrfy(ctx context.Context, arg string) { s.reply(replyVRFY) }
func (s *Session) cmdExpn(ctx context.Context, arg string) { s.reply(replyEXPN) }

func (s *Session) cmdStarttls(ctx context.Context, arg string) {
	switch {
	case s.rt.tls == nil:
		s.errReply(replyNoTLS)
		return
	case s.tls:
		s.errReply(replyTLSAlready)
		return
	case arg != "":
		s.errReply(replyBadSyntax)
		return
	}
	if s.tx != nil {
		s.upstreamRset(ctx)
		s.endTx("reset", Reply{}, nil)
	}
	s.reply(replyReadyTLS)
	if err := s.startTLS(s.rt.tls); err != nil {
		s.log.Info("TLS handshake failed", "err", err)
		s.quit = true
	}
}

// cmdXforward takes the original client's attributes from a trusted
// forwarder (Postfix XFORWARD_README); they apply to the policies, the logs
// and the upstream's XFORWARD.
func (s *Session) cmdXforward(ctx context.Context, arg string) {
	attrs, ok := s.forwardedAttrs(arg)
	if !ok {
		return
	}
	s.applyAttrs(attrs)
	s.reply(replyOK)
}

// cmdXclient is XFORWARD's sibling that also restarts the session (Postfix
// XCLIENT_README): the reply is a new greeting.
func (s *Session) cmdXclient(ctx context.Context, arg string) {
	attrs, ok := s.forwardedAttrs(arg)
	if !ok {
		return
	}
	s.reset()
	// XCLIENT names a new client: what it does not give is not carried
	// over from an earlier XFORWARD or XCLIENT, as on a new connection
	// from the forwarder.
	s.client.IP, s.client.Port = s.remote.Addr().String(), int(s.remote.Port())
	s.clientName = ""
	s.applyAttrs(attrs)
	s.preDone = false
	s.replyRaw(Reply{Code: 220, Text: s.rt.cfg.Hostname + " ESMTP mailgate"})
}

// forwardedAttrs checks an XFORWARD or XCLIENT command (a trusted
// forwarder, outside a transaction, well formed) and returns its
// attributes; on false it has already replied.
func (s *Session) forwardedAttrs(arg string) (map[string]string, bool) {
	switch {
	case !s.trusted:
		s.errReply(replyNotTrusted)
		return nil, false
	case s.tx != nil:
		s.errReply(replyNestedMail)
		return nil, false
	}
	attrs, ok := xforwardAttrs(arg)
	if !ok {
		s.errReply(replyBadSyntax)
		return nil, false
	}
	if a, ok := attrs["ADDR"]; ok && knownAttr(a) {
		if _, ok := forwardedIP(a); !ok {
			// Policies, logs and the upstream's XCLIENT would take it
			// for an address.
			s.log.Warn("forwarder sent an ADDR that is not an IP address, refused", "addr", a)
			s.errReply(replyBadSyntax)
			return nil, false
		}
	}
	return attrs, true
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
	s.preDone = false
	s.preVerdict = nil
	s.acceptAll = false
}

// cmdAuth relays the SASL exchange to the upstream (auth: relay), which
// decides; it is only offered and accepted after STARTTLS (RFC 4954 §4).
// Only well-formed responses go upstream (validSASL), only to an upstream
// that may carry credentials (CredentialsSafe). The exchange is never
// logged: refusals log its length only.
func (s *Session) cmdAuth(ctx context.Context, arg string) {
	switch {
	case s.rt.cfg.Auth != "relay":
		s.errReply(replyAuthNotAvail)
		return
	case !s.tls:
		s.errReply(replyAuthNeedTLS)
		return
	case s.helo == "":
		s.errReply(replyNeedHelo)
		return
	case s.tx != nil || s.client.AuthUser != "":
		s.errReply(r(503, 5, 5, 1, "Error: AUTH not allowed now"))
		return
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	if mech != "PLAIN" && mech != "LOGIN" {
		s.errReply(r(504, 5, 5, 4, "Error: unsupported authentication mechanism"))
		return
	}
	if hasInitial && !validSASL(initial, true) {
		s.log.Info("AUTH refused: malformed initial response", "bytes", len(initial))
		s.errReply(replyAuthBadResponse)
		return
	}
	if err := s.ensureUpstream(ctx); err != nil {
		s.log.Warn("upstream unavailable", "err", err)
		s.reply(replyUpstreamDown)
		return
	}
	ar, ok := s.up.(authRelayer)
	if !ok {
		s.errReply(replyAuthNotAvail)
		return
	}
	if !ar.CredentialsSafe() {
		s.log.Warn("AUTH refused: the upstream connection is neither loopback nor TLS with a verified certificate",
			"upstream", s.rt.cfg.Upstream)
		s.reply(replyAuthUnsafe)
		return
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
			s.cancelAuth(ctx, ar)
			return
		}
		s.replyRaw(Reply{Code: 334, Text: rp.Text})
		if err := s.bw.Flush(); err != nil {
			s.quit = true
			return
		}
		line, rerr := smtpline.ReadLine(s.br, maxSASLResponse)
		switch {
		case rerr == smtpline.ErrLineTooLong:
			s.log.Info("AUTH refused: response too long", "limit", maxSASLResponse)
			s.cancelAuth(ctx, ar)
			return
		case rerr != nil:
			s.readFailed(rerr, "reading AUTH response")
			s.quit = true
			return
		case !validSASL(line, false):
			s.log.Info("AUTH refused: malformed response", "bytes", len(line))
			s.cancelAuth(ctx, ar)
			return
		}
		responses = append(responses, line)
		rp, err = ar.Raw(ctx, line)
	}
	if err != nil {
		s.upstreamFailed(err)
		s.reply(replyUpstreamFailed)
		return
	}
	if rp.Code == 235 {
		s.client.AuthUser = saslUser(mech, responses)
		s.log.Info("authenticated", "user", s.client.AuthUser)
	} else {
		s.countError()
	}
	s.reply(rp)
}

// maxSASLRounds bounds the challenges of one AUTH exchange (PLAIN needs
// one, LOGIN two).
const maxSASLRounds = 10

// cancelAuth ends an upstream exchange the client's response may not go
// to: "*" cancels it (RFC 4954 §4, the upstream answers 501); an upstream
// that does not end it is dropped, so no later line can continue it. The
// client gets 501 5.5.2.
func (s *Session) cancelAuth(ctx context.Context, ar authRelayer) {
	rp, err := ar.Raw(ctx, "*")
	if err == nil && rp.Code/100 == 3 {
		err = fmt.Errorf("%w: AUTH cancel answered %d", upstream.ErrFailed, rp.Code)
	}
	if err != nil {
		s.upstreamFailed(err)
	}
	s.errReply(replyAuthBadResponse)
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
