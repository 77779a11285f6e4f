package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mailgate/internal/bounded"
	"mailgate/internal/smtpline"
	"mailgate/upstream"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mailgate/clamd"
	"mailgate/facts"
	"mailgate/rules"
)

// Session is one client connection. Its fields come in three groups, each
// with its reset: the connection (kept to the end), the HELO/TLS state
// (reset by STARTTLS and XCLIENT, RFC 3207 §4.2), and the transaction (reset
// by RSET, HELO/EHLO, and the end of DATA: rset(), RFC 5321 §4.1.1.5).
type Session struct {
	// connection
	srv      *Server
	rt       *liveConfig
	id       string
	raw      net.Conn // the TCP connection
	conn     net.Conn // raw, or the TLS connection over it
	rd       *deadlineReader
	br       *bufio.Reader
	bw       *bufio.Writer
	log      *slog.Logger
	remote   netip.AddrPort
	listener string
	trusted  bool        // a trusted forwarder: XFORWARD/XCLIENT believed
	eval     Evaluator   // the policies; replaced when one is abandoned at timeouts.policy
	pol      *rules.Conn // the policy side of the connection (rules/transaction.go)
	// av scans the message with clamd before the data stage when the
	// policies read Virus (nil otherwise); its Open is set per message.
	av *clamd.Enricher
	// lookups are the connection's DNS lookups (lookups.go); nil: none.
	lookups *facts.Lookups
	up      upstream.Conn
	errors  int
	quit    bool
	last    Reply       // the last reply sent, for the command metrics
	idle    atomic.Bool // waiting for a command outside a transaction (Shutdown may wake it)
	start   time.Time

	// HELO/TLS state
	helo       string
	esmtp      bool
	tls        bool
	client     rules.Client // the original client (after XFORWARD/XCLIENT)
	clientName string

	// transaction
	tx *transaction
}

// transaction is one MAIL ... end-of-DATA exchange.
type transaction struct {
	rcptLimitLogged bool
	start           time.Time
	from            string
	params          []param
	mp              mailParams
	rcpts           []rcptTo
	pol             *rules.Tx  // the policy side: decided before DATA, edits, rules
	upstream        Reply      // last upstream reply
	messageID       string     // the message's Message-ID, for the transaction line
	bdat            *bdatState // chunks so far (RFC 3030)
}

type rcptTo struct {
	addr   string
	params []param
}

// rset forgets the transaction (RFC 5321 §4.1.1.5).
func (s *Session) rset() {
	if s.tx != nil && s.tx.bdat != nil {
		s.tx.bdat.close()
	}
	if s.tx != nil {
		s.endLookups()
	}
	s.tx = nil
}

// reset forgets the HELO/TLS-level state (after STARTTLS or XCLIENT): the
// client must say EHLO again (RFC 3207 §4.2).
func (s *Session) reset() {
	s.rset()
	s.helo, s.esmtp = "", false
	s.client.HELO = ""
	s.pol.UpdateClient(s.client)
}

// deadlineReader bounds every read from the client: each by idle, and all
// by hard when set (data_total).
type deadlineReader struct {
	c    net.Conn
	idle time.Duration
	hard time.Time
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	dl := time.Now().Add(d.idle)
	if !d.hard.IsZero() && d.hard.Before(dl) {
		dl = d.hard
	}
	d.c.SetReadDeadline(dl)
	return d.c.Read(p)
}

// readerPool and writerPool recycle the client connection's buffers
// (8 KiB in, 4 KiB out) between sessions.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8192) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}
)

func newSession(srv *Server, rt *liveConfig, c net.Conn, id string) *Session {
	s := &Session{srv: srv, rt: rt, id: id, raw: c, conn: c, start: time.Now()}
	s.rd = &deadlineReader{c: c, idle: rt.cfg.Timeouts.Command}
	s.br = readerPool.Get().(*bufio.Reader)
	s.br.Reset(s.rd)
	s.bw = writerPool.Get().(*bufio.Writer)
	s.bw.Reset(c)
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		s.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.listener = c.LocalAddr().String()
	s.client = rules.Client{IP: s.remote.Addr().String(), Port: int(s.remote.Port()), Listener: s.listener}
	for _, p := range rt.cfg.TrustedForwarders {
		if p.Contains(s.remote.Addr()) {
			s.trusted = true
		}
	}
	s.log = srv.log.With("session", id, "client", s.remote.String())
	var ev rules.StageEvaluator // nil: no policies
	if rt.engine != nil {
		s.eval = rt.engine.NewEvaluator()
		ev = sessionEval{s}
	}
	// A trusted forwarder's connect and helo stages wait for its
	// XFORWARD/XCLIENT, until the first MAIL.
	s.pol = rules.NewConn(ev, s.client, s.trusted)
	if rt.clamd != nil && engineUses(rt.engine, "Virus") {
		s.av = &clamd.Enricher{Client: rt.clamd, Wanted: true, Observe: srv.metrics.observeScan}
		s.pol.AddEnricher(s.av)
	}
	s.startLookups()
	return s
}

// sessionEval is the session's policies as the transaction object runs
// them: bounded by timeouts.policy, counted and logged.
type sessionEval struct{ s *Session }

func (e sessionEval) Eval(stage rules.Stage, f *rules.Facts) rules.Verdict {
	return e.s.evaluate(stage, f)
}

// serve runs the session to its end. Panics stay inside: logged with the
// stack, counted, answered 421 4.3.0 (docs/DEVELOPING.md rule 13).
func (s *Session) serve(ctx context.Context) {
	defer func() {
		if v := recover(); v != nil {
			s.srv.metrics.panics.Inc()
			s.srv.panicCount.Add(1)
			s.log.Error("panic in session", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.bw.Reset(s.conn)
			s.writeReply(replyInternal)
			s.bw.Flush()
		}
		if s.tx != nil {
			s.endTx(verdictClientGone, Reply{}, nil) // releases a BDAT spool too
		}
		s.closeUpstream(false)
		s.conn.Close()
		// Nothing uses the buffers once serve returns: recycled for
		// the next connection (one per message with most MTAs).
		s.br.Reset(nil)
		readerPool.Put(s.br)
		s.bw.Reset(nil)
		writerPool.Put(s.bw)
		s.br, s.bw = nil, nil
	}()
	if !s.greet() {
		return
	}
	for !s.quit {
		if ctx.Err() != nil && s.tx == nil {
			s.reply(replyShutdown)
			s.bw.Flush()
			return
		}
		if s.br.Buffered() == 0 {
			if err := s.bw.Flush(); err != nil {
				return
			}
		}
		s.rd.idle, s.rd.hard = s.rt.cfg.Timeouts.Command, time.Time{}
		s.idle.Store(s.tx == nil)
		if s.tx == nil && s.srv.stopping.Load() {
			s.reply(replyShutdown)
			s.bw.Flush()
			return
		}
		line, err := smtpline.ReadLine(s.br, maxCommandLine)
		s.idle.Store(false)
		if err == smtpline.ErrLineTooLong {
			s.log.Info("command line too long", "limit", maxCommandLine)
			s.reply(replyLineTooLong)
			if s.countError() {
				return
			}
			continue
		}
		if err != nil {
			s.act(ctx, s.readFailed(err, "reading command"))
			s.bw.Flush()
			return
		}
		// Commands run to their end even while a shutdown drains: the
		// server's context only says that one started.
		s.dispatch(context.Background(), line)
		if s.errors > s.rt.cfg.Limits.Errors && s.rt.cfg.Limits.Errors > 0 {
			s.log.Warn("too many errors, closing the session", "errors", s.errors, "limit", s.rt.cfg.Limits.Errors)
			s.reply(replyTooManyErrors)
			s.bw.Flush()
			return
		}
	}
	s.bw.Flush()
}

// maxCommandLine bounds a command line (RFC 5321 §4.5.3.1.4 says 512; ESMTP
// parameters and XFORWARD need more).
const maxCommandLine = 4096

// readFailed is the outcome of a read error from the client: a timeout
// gets 421, a closed connection nothing.
func (s *Session) readFailed(err error, what string) outcome {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() && s.srv.stopping.Load():
		s.log.Info("session cut off by shutdown", "during", what)
		return outcome{reply: replyShutdown, end: verdictShutdown}
	case errors.As(err, &ne) && ne.Timeout():
		s.log.Info("client timeout", "during", what)
		return outcome{reply: replyTimeout, end: verdictTimeout}
	}
	s.log.Info("client gone", "during", what, "err", err)
	return outcome{silent: true, end: verdictClientGone}
}

func (s *Session) countError() bool {
	s.errors++
	return s.rt.cfg.Limits.Errors > 0 && s.errors > s.rt.cfg.Limits.Errors
}

// greet runs the connect stage, pauses for timeouts.greet_delay, and sends
// the greeting; false ends the session.
func (s *Session) greet() bool {
	if d := s.pol.Connect(); d.Refused() {
		rp := withEnhanced(d.Reply)
		s.log.Info("connection refused by policy", "reply", rp.String())
		s.reply(rp)
		s.bw.Flush()
		return false
	}
	if d := s.rt.cfg.Timeouts.GreetDelay; d > 0 && !s.trusted && !s.greetDelay(d) {
		return false
	}
	s.replyRaw(Reply{Code: 220, Text: s.rt.cfg.Hostname + " ESMTP mailgate"})
	return true
}

// greetDelay holds the greeting back for d and watches whether the client
// talks first (RFC 5321 §3.1: the client waits for the greeting), which
// makes Client.Pregreet true from the helo stage on. What it sent stays
// buffered and is read as commands after the greeting, like pipelined
// input: the policies decide (docs/policy.md). The whole pause is kept even
// when data comes early, so the delay does not reveal the detection. False:
// the client left.
func (s *Session) greetDelay(d time.Duration) bool {
	end := time.Now().Add(d)
	s.rd.idle = d
	_, err := s.br.Peek(1)
	s.rd.idle = s.rt.cfg.Timeouts.Command
	var ne net.Error
	switch {
	case err == nil:
		s.client.Pregreet = true
		s.pol.UpdateClient(s.client)
		s.log.Info("pregreet: the client sent data before the greeting", "client_ip", s.client.IP, "bytes", s.br.Buffered())
		time.Sleep(time.Until(end))
	case errors.As(err, &ne) && ne.Timeout():
	default:
		s.log.Info("client gone before the greeting", "err", err)
		return false
	}
	return true
}

// evaluate runs one stage and counts and logs what the rules did.
func (s *Session) evaluate(stage rules.Stage, f *rules.Facts) rules.Verdict {
	t0 := time.Now()
	v := s.evalBounded(stage, f)
	s.srv.metrics.observeVerdict(stage, v, time.Since(t0))
	for _, err := range v.Errors {
		s.log.Warn("rule error", "stage", stage.String(), "err", err)
	}
	if len(v.Monitor) > 0 {
		s.log.Info("monitor rules matched", "stage", stage.String(), "rules", v.Monitor)
	}
	return v
}

// evalBounded runs the evaluator for at most timeouts.policy (bounded.go).
// Past it, or when too many abandoned evaluations still run, the verdict
// is a tempfail whatever rule_error says: the client must not be able to
// choose the outcome by making a rule slow.
func (s *Session) evalBounded(stage rules.Stage, f *rules.Facts) rules.Verdict {
	var v rules.Verdict
	ev := s.eval
	if hs, ok := ev.(interface{ HasStage(rules.Stage) bool }); ok && !hs.HasStage(stage) {
		return ev.Eval(stage, f) // no rule to wait for
	}
	timeout := s.rt.cfg.Timeouts.Policy
	err := s.srv.work.Run(timeout, func() { v = ev.Eval(stage, f) })
	switch {
	case err == nil:
		return v
	case errors.Is(err, bounded.ErrTimeout):
		// The evaluator now belongs to the abandoned goroutine.
		s.eval = s.rt.engine.NewEvaluator()
		s.log.Warn("policy evaluation past timeouts.policy: tempfailed", "stage", stage.String(), "timeout", "timeouts.policy", "limit", timeout.String())
	case errors.Is(err, bounded.ErrBusy):
		s.log.Warn("tempfailed: too many evaluations past their timeout still running", "stage", stage.String(), "timeout", "timeouts.policy", "running", s.srv.work.Abandoned())
	default:
		s.log.Error("policy evaluation failed", "stage", stage.String(), "err", err)
	}
	return rules.Verdict{Action: rules.ActionTempfail, Reply: replyLocalError}
}

// reply writes one reply; it goes out when the client's pipelined input
// is used up (RFC 2920 §3.1) or before the next blocking read.
func (s *Session) reply(rp Reply) { s.replyRaw(withEnhanced(rp)) }

// replyRaw writes rp as it is: the greeting and the HELO/EHLO replies carry
// no enhanced code (RFC 2034 §3 covers replies after EHLO's own).
func (s *Session) replyRaw(rp Reply) {
	s.last = rp
	s.srv.metrics.replies.WithLabelValues(strconv.Itoa(rp.Code)).Inc()
	s.log.Debug("reply", "reply", rp.String())
	s.writeReply(rp)
}

func (s *Session) writeReply(rp Reply) {
	var buf [512]byte
	s.bw.Write(formatReply(buf[:0], rp))
}

// flushIfIdle sends pending replies unless more pipelined input waits.
func (s *Session) flushIfIdle() error {
	if s.br.Buffered() == 0 {
		return s.bw.Flush()
	}
	return nil
}

// ensureUpstream opens the upstream session at the first MAIL.
func (s *Session) ensureUpstream(ctx context.Context) error {
	if s.up != nil {
		xc, ok := s.up.(xclientConn)
		if !ok {
			return nil
		}
		if ci, sent := xc.XclientIdentity(); !sent || ci == s.clientInfo() {
			return nil
		}
		// The client said EHLO again with another name (or another
		// identity arrived): the upstream's one XCLIENT no longer
		// describes it, and it takes no second one.
		s.closeUpstream(false)
	}
	up, err := s.rt.upstream.Open(ctx, s.clientInfo())
	if err != nil {
		s.srv.metrics.upstreamErrors.Inc()
		return err
	}
	s.up = up
	if xc, ok := up.(xclientConn); ok && s.rt.cfg.XClient {
		if _, sent := xc.XclientIdentity(); !sent {
			// Without XCLIENT the upstream's own restrictions see
			// mailgate's address, inside its mynetworks: an open relay
			// under Postfix's defaults (README "Set-up 1").
			s.srv.metrics.upstreamNoXclient.Inc()
			s.rt.noXclientWarn.Do(func() {
				s.log.Warn("the upstream does not offer XCLIENT: its own checks (relay, check_client_access, mynetworks) see mailgate's address, not the client's; list mailgate in Postfix's smtpd_authorized_xclient_hosts, or set xclient: false",
					"upstream", s.rt.cfg.Upstream)
			})
		}
	}
	return nil
}

// xclientConn is an upstream session that may have sent XCLIENT.
type xclientConn interface {
	XclientIdentity() (upstream.Client, bool)
}

func (s *Session) clientInfo() upstream.Client {
	proto := "SMTP"
	if s.esmtp {
		proto = "ESMTP"
	}
	return upstream.Client{Name: s.clientName, Addr: s.client.IP, Port: s.client.Port, Proto: proto, Helo: s.client.HELO}
}

// upstreamFailed drops a failed upstream session: the next MAIL opens a
// new one.
func (s *Session) upstreamFailed(err error) {
	s.srv.metrics.upstreamErrors.Inc()
	s.log.Warn("upstream failed", "err", err)
	s.closeUpstream(true)
}

func (s *Session) closeUpstream(failed bool) {
	if s.up == nil {
		return
	}
	if failed {
		s.up.Close()
	} else {
		s.up.Quit(context.Background())
	}
	s.up = nil
}

// upstreamRset resets the upstream transaction; failure drops the upstream.
func (s *Session) upstreamRset(ctx context.Context) {
	if s.up == nil {
		return
	}
	if _, err := s.up.Rset(ctx); err != nil {
		s.upstreamFailed(err)
	}
}

// startTLS upgrades the connection (RFC 3207). Input pipelined after
// STARTTLS is thrown away: it was sent in clear text (CVE-2011-0411).
func (s *Session) startTLS(cfg *tls.Config) error {
	s.bw.Flush()
	if n := s.br.Buffered(); n > 0 {
		s.log.Warn("discarding input pipelined after STARTTLS", "bytes", n)
	}
	tc := tls.Server(s.raw, cfg)
	tc.SetDeadline(time.Now().Add(s.rt.cfg.Timeouts.Command))
	if err := tc.Handshake(); err != nil {
		return err
	}
	tc.SetDeadline(time.Time{})
	s.conn = tc
	s.rd.c = tc
	s.br.Reset(s.rd)
	s.bw.Reset(tc)
	s.tls = true
	s.client.TLS = true
	s.reset() // the policy's client gets TLS too
	return nil
}

// endTx logs the transaction in one line (DESIGN "The SMTP side") and
// forgets it.
func (s *Session) endTx(v verdict, rp Reply, extra []any) {
	tx := s.tx
	if tx == nil {
		return
	}
	s.srv.metrics.transactions.WithLabelValues(string(v)).Inc()
	rcpts := make([]string, len(tx.rcpts))
	for i, r := range tx.rcpts {
		rcpts[i] = r.addr
	}
	args := []any{
		"helo", s.client.HELO, "client_ip", s.client.IP, "tls", s.tls, "from", tx.from, "rcpts", rcpts,
		"verdict", string(v), "rules", tx.pol.Rules(),
	}
	if !rp.IsZero() {
		args = append(args, "reply", rp.String())
	}
	if tx.messageID != "" {
		args = append(args, "message_id", tx.messageID)
	}
	if !tx.upstream.IsZero() {
		args = append(args, "upstream_reply", tx.upstream.String())
		// The upstream's queue id matches this line with its own log
		// (Postfix: "queued as X", README "Operations").
		if id := upstream.QueueID(tx.upstream); id != "" {
			args = append(args, "queue_id", id)
		}
	}
	args = append(args, extra...)
	args = append(args, "duration_ms", time.Since(tx.start).Milliseconds())
	s.log.Info("transaction", args...)
	s.rset()
}
