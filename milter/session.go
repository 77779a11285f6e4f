package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	gomilter "github.com/d--j/go-milter"

	"mailgate/facts"
	"mailgate/internal/bounded"
	"mailgate/mimeparse"
	"mailgate/rules"
	"mailgate/spool"
)

// session is one milter connection: normally one SMTP session of the MTA.
// The callbacks of one session run one after the other. Connection
// fields, then the transaction's (reset by rset, at each new MAIL and on
// abort).
type session struct {
	srv      *Server
	rt       *live
	seq      uint64       // the session's number: id "m%06d"
	lg       *slog.Logger // logger's, made at its first use
	leadSpc  bool         // header values come with their leading space (OptHeaderLeadingSpace)
	protocol gomilter.OptProtocol
	// unheard is a refusal at a stage the MTA was told not to wait for
	// (a reload added rules for it after the negotiation): the message
	// is tempfailed at its end instead (fail closed).
	unheard  *rules.Reply
	ev       *evaluator
	conn     *rules.Conn
	client   rules.Client
	hostname string // {client_name}, logged
	refused  bool   // the connection was refused at connect or helo
	// lookups are the connection's DNS lookups (lookups.go); nil: none.
	lookups *facts.Lookups

	// The transaction.
	tx      *rules.Tx
	from    string
	start   time.Time
	sp      *spool.Spool
	fields  []field // the top-level header as the MTA sent it
	hdrEnd  int64   // offset of the empty line after the header (-1 before EOH)
	tooBig  bool
	queueID string
	line    []byte // Header's field line, reused (the spool and the checks copy what they keep)
}

// field is one top-level header field as received, at its offsets in the
// spooled message.
type field struct {
	name, value string // value as sent, line breaks CRLF
	start, end  int64
}

func (s *Server) newSession(protocol gomilter.OptProtocol) gomilter.Milter {
	rt := s.rt.Load()
	ss := &session{srv: s, rt: rt, seq: s.seq.Add(1),
		leadSpc: protocol&gomilter.OptHeaderLeadingSpace != 0, protocol: protocol, hdrEnd: -1}
	if rt.set != nil {
		ss.ev = &evaluator{s: ss, set: rt.set, ev: rt.set.NewEvaluator()}
	}
	return ss
}

// id names the session in its log lines and quarantine records.
func (ss *session) id() string { return fmt.Sprintf("m%06d", ss.seq) }

// logger is the session's logger (its id and front-end on every line).
// It is made when first needed: most sessions log nothing below the
// configured level, and With formats its attributes at once.
func (ss *session) logger() *slog.Logger {
	if ss.lg == nil {
		ss.lg = ss.srv.log.With("session", ss.id(), "frontend", "milter")
	}
	return ss.lg
}

// stageEval returns the evaluator the transaction object runs (nil: no
// policies).
func (ss *session) stageEval() rules.StageEvaluator {
	if ss.ev == nil {
		return nil
	}
	return ss.ev
}

// Replies mailgate gives itself (docs/DESIGN.md "Milter mode").
var (
	replyLocalError = rules.Reply{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "Error: local error in processing"}
	replyTooBig     = rules.Reply{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: "Error: message too large"}
	replyNoRcpt     = rules.Reply{Code: 554, Enhanced: [3]int{5, 5, 1}, Text: "Error: no valid recipients"}
)

// respond turns a reply into the milter's reply code response; a reply
// that is not 4xx or 5xx becomes the local error (never a pass).
func respond(rp rules.Reply) *gomilter.Response {
	if rp.Code < 400 || rp.Code > 599 {
		rp = replyLocalError
	}
	text := rp.Text
	if rp.Enhanced != [3]int{} {
		text = fmt.Sprintf("%d.%d.%d %s", rp.Enhanced[0], rp.Enhanced[1], rp.Enhanced[2], rp.Text)
	}
	resp, err := gomilter.RejectWithCodeAndReason(uint16(rp.Code), text)
	if err != nil {
		if rp.Code/100 == 5 {
			return gomilter.RespReject
		}
		return gomilter.RespTempFail
	}
	return resp
}

// decided answers a stage; a refusal the MTA will not read (noReply) is
// kept for the end of the message.
func (ss *session) decided(d rules.Decision, noReply gomilter.OptProtocol) *gomilter.Response {
	if !d.Refused() {
		return gomilter.RespContinue
	}
	if ss.protocol&noReply != 0 && ss.unheard == nil {
		rp := replyLocalError
		ss.unheard = &rp
		ss.logger().Warn("a policy refusal at a stage negotiated without replies: the message will be tempfailed", "reply", d.Reply.String())
	}
	return respond(d.Reply)
}

// guard recovers a panic in a callback: logged, counted, and answered
// with a tempfail (docs/DEVELOPING.md rule 13), never a pass.
func (ss *session) guard(resp **gomilter.Response, err *error) {
	if v := recover(); v != nil {
		ss.srv.panics.Add(1)
		ss.logger().Error("panic in milter callback", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*resp, *err = respond(replyLocalError), nil
	}
}

func (ss *session) NewConnection(m gomilter.Modifier) error { return nil }

// Connect runs the connect stage for the client the MTA names.
func (ss *session) Connect(host string, family string, port uint16, addr string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	ss.hostname = host
	if v := m.Get(gomilter.MacroClientName); v != "" {
		ss.hostname = v
	}
	ip := addr
	if v := m.Get(gomilter.MacroClientAddr); v != "" {
		ip = v
	}
	ss.client = rules.Client{IP: strings.TrimPrefix(ip, "IPv6:"), Port: int(port)}
	if family == "unix" || family == "unknown" {
		ss.client.Port = 0
	}
	if da, dp := m.Get(gomilter.MacroDaemonAddr), m.Get(gomilter.MacroDaemonPort); da != "" {
		ss.client.Listener = da
		if dp != "" {
			ss.client.Listener = net.JoinHostPort(da, dp)
		}
	}
	ss.client.TLS = m.Get(gomilter.MacroTlsVersion) != ""
	ss.conn = ss.newConn()
	d := ss.conn.Connect()
	if d.Refused() {
		ss.refused = true
		ss.logger().Info("connection refused by policy", "client_ip", ss.client.IP, "client_name", ss.hostname, "reply", d.Reply.String(), "rule", d.Rule)
	}
	return ss.decided(d, gomilter.OptNoConnReply), nil
}

// Helo runs the helo stage (again after STARTTLS).
func (ss *session) Helo(name string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if ss.conn == nil { // the MTA sent no connect event
		ss.conn = ss.newConn()
	}
	ss.updateClient(m)
	d := ss.conn.Helo(name)
	ss.client.HELO = name
	if d.Refused() {
		ss.logger().Info("HELO refused by policy", "client_ip", ss.client.IP, "helo", name, "reply", d.Reply.String(), "rule", d.Rule)
	}
	return ss.decided(d, gomilter.OptNoHeloReply), nil
}

// updateClient takes TLS and AUTH from the macros: they change no
// decision already made (rules.Conn.UpdateClient).
func (ss *session) updateClient(m gomilter.Modifier) {
	ss.client.TLS = ss.client.TLS || m.Get(gomilter.MacroTlsVersion) != ""
	if u := m.Get(gomilter.MacroAuthAuthen); u != "" {
		ss.client.AuthUser = u
	}
	ss.client.HELO = ss.conn.Client().HELO
	ss.conn.UpdateClient(ss.client)
}

// MailFrom opens a transaction.
func (ss *session) MailFrom(from string, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	ss.rset()
	if ss.conn == nil {
		ss.conn = ss.newConn()
	}
	ss.updateClient(m)
	size, utf8 := mailParams(esmtpArgs)
	ss.from, ss.start = from, time.Now()
	ss.queueID = m.Get(gomilter.MacroQueueId)
	ss.mailLookups(from)
	tx, d := ss.conn.Mail(from, size, utf8)
	if d.Refused() {
		ss.endTx(tx, "refused-mail", d.Reply, nil)
		return ss.decided(d, gomilter.OptNoMailReply), nil
	}
	ss.tx = tx
	return gomilter.RespContinue, nil
}

// mailParams reads SIZE= and SMTPUTF8 from the MAIL parameters.
func mailParams(args string) (size int, utf8 bool) {
	for _, a := range strings.Fields(args) {
		k, v, _ := strings.Cut(a, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				size = n
			}
		case "SMTPUTF8":
			utf8 = true
		}
	}
	return size, utf8
}

// RcptTo runs the rcpt stage for one recipient.
func (ss *session) RcptTo(rcptTo string, esmtpArgs string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if ss.tx == nil {
		return respond(replyLocalError), nil
	}
	if id := m.Get(gomilter.MacroQueueId); id != "" {
		ss.queueID = id
	}
	d := ss.tx.Rcpt(rcptTo)
	if d.Refused() {
		ss.logger().Info("recipient refused by policy", "rcpt", rcptTo, "reply", d.Reply.String(), "rule", d.Rule)
		return ss.decided(d, gomilter.OptNoRcptReply), nil
	}
	ss.tx.AddRcpt(rcptTo)
	return gomilter.RespContinue, nil
}

func (ss *session) Data(m gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Header spools one top-level field as "name:value" (the value with its
// leading space when the MTA keeps it, else one is put back) and CRLF.
func (ss *session) Header(name string, value string, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if ss.tx == nil {
		return gomilter.RespContinue, nil
	}
	sp := ss.spool()
	if !ss.leadSpc {
		value = " " + value
	}
	value = crlf(value)
	f := field{name: name, value: value, start: sp.Size()}
	ss.line = append(append(append(append(ss.line[:0], name...), ':'), value...), "\r\n"...)
	ss.write(ss.line)
	f.end = sp.Size()
	ss.fields = append(ss.fields, f)
	return gomilter.RespContinue, nil
}

// crlf makes every line break of a folded value CRLF (MTAs send LF).
func crlf(v string) string {
	if !strings.ContainsAny(v, "\r\n") {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\n", "\r\n")
}

// Headers ends the header block with its empty line.
func (ss *session) Headers(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if ss.tx == nil {
		return gomilter.RespContinue, nil
	}
	sp := ss.spool()
	ss.hdrEnd = sp.Size()
	ss.write([]byte("\r\n"))
	return gomilter.RespContinue, nil
}

// BodyChunk spools the body as the MTA sends it (CRLF line ends).
func (ss *session) BodyChunk(chunk []byte, m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if ss.tx == nil {
		return gomilter.RespContinue, nil
	}
	if ss.hdrEnd < 0 { // no end-of-header event: the MTA skipped it
		ss.Headers(m)
	}
	ss.write(chunk)
	return gomilter.RespContinue, nil
}

func (ss *session) spool() *spool.Spool {
	if ss.sp == nil {
		cfg := ss.rt.cfg
		ss.sp = spool.New(cfg.SpoolDir, cfg.Limits.SpoolMemory, ss.srv.budget)
	}
	return ss.sp
}

// write spools p up to limits.message_size; past it the message is
// refused at its end, as the proxy does (552 5.3.4).
func (ss *session) write(p []byte) {
	sp := ss.spool()
	if ss.tooBig {
		return
	}
	if sp.Size()+int64(len(p)) > ss.rt.cfg.Limits.MessageSize {
		ss.tooBig = true
		return
	}
	sp.Write(p)
	ss.tee(p) // DKIM and ARC see the bytes as they are spooled
}

// EndOfMessage decides the transaction on the whole message and applies
// the verdict (apply.go).
func (ss *session) EndOfMessage(m gomilter.Modifier) (resp *gomilter.Response, err error) {
	defer ss.guard(&resp, &err)
	if id := m.Get(gomilter.MacroQueueId); id != "" {
		ss.queueID = id
	}
	if ss.tx == nil {
		return respond(replyLocalError), nil
	}
	if ss.unheard != nil {
		ss.endTx(ss.tx, "tempfail", *ss.unheard, nil)
		return respond(*ss.unheard), nil
	}
	if ss.hdrEnd < 0 {
		ss.Headers(m)
	}
	defer ss.rset()
	return ss.endOfMessage(m), nil
}

// Abort forgets the transaction; the connection's stages stay.
func (ss *session) Abort(m gomilter.Modifier) error {
	ss.rset()
	return nil
}

func (ss *session) Unknown(cmd string, m gomilter.Modifier) (*gomilter.Response, error) {
	return gomilter.RespContinue, nil
}

// Cleanup releases what the connection holds.
func (ss *session) Cleanup(m gomilter.Modifier) { ss.rset() }

// rset forgets the transaction (RFC 5321 §4.1.1.5 semantics: connection
// state stays).
func (ss *session) rset() {
	if ss.sp != nil {
		ss.sp.Close()
	}
	ss.endLookups()
	ss.tx, ss.sp, ss.fields, ss.hdrEnd, ss.tooBig, ss.from, ss.queueID = nil, nil, nil, -1, false, "", ""
}

// endTx logs the transaction in one line, as the proxy does (its
// fields are gathered only when the line is logged at the configured
// level); rule errors are warnings.
func (ss *session) endTx(tx *rules.Tx, verdict string, rp rules.Reply, extra []any) {
	if tx != nil {
		for _, err := range tx.Errors() {
			ss.logger().Warn("rule error", "err", err)
		}
	}
	if ss.srv.observe != nil {
		var matched []string
		if tx != nil {
			matched = tx.Rules()
		}
		ss.srv.observe(verdict, matched)
	}
	if !ss.srv.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	args := []any{"queue_id", ss.queueID, "helo", ss.client.HELO, "client_ip", ss.client.IP, "client_name", ss.hostname,
		"tls", ss.client.TLS, "from", ss.from}
	if tx != nil {
		args = append(args, "rcpts", tx.Rcpts(), "rules", tx.Rules())
		if mon := tx.Monitor(); len(mon) > 0 {
			args = append(args, "monitor", mon)
		}
	}
	args = append(args, "verdict", verdict)
	if !rp.IsZero() {
		args = append(args, "reply", rp.String())
	}
	args = append(args, extra...)
	if !ss.start.IsZero() {
		args = append(args, "duration_ms", time.Since(ss.start).Milliseconds())
	}
	ss.logger().Info("transaction", args...)
}

// parse parses the spooled message for at most timeouts.inspect; false
// past it or when too many abandoned parses still run (the message is
// then tempfailed, never passed).
func (ss *session) parse() (*mimeparse.Message, bool) {
	raw, err := ss.sp.Reader()
	if err != nil {
		ss.logger().Error("reading spool", "err", err)
		return nil, false
	}
	var msg *mimeparse.Message
	var perr error
	lim := ss.rt.cfg.MimeLimits()
	if ss.rt.set != nil {
		lim = ss.rt.set.TrimLimits(lim)
	}
	release := ss.sp.Share()
	timeout := ss.rt.cfg.Timeouts.Inspect
	err = ss.srv.work.Run(timeout, func() {
		defer release()
		msg, perr = mimeparse.Parse(raw, lim)
	})
	switch {
	case err == nil && perr == nil && msg != nil:
		return msg, true
	case err == nil:
		ss.logger().Error("parse failed", "err", perr)
	case errors.Is(err, bounded.ErrTimeout):
		ss.logger().Warn("parse and inspection past timeouts.inspect: tempfailed", "timeout", "timeouts.inspect", "limit", timeout.String())
	case errors.Is(err, bounded.ErrBusy):
		release()
		ss.logger().Warn("tempfailed: too many parses or evaluations past their timeout still running", "timeout", "timeouts.inspect")
	default:
		ss.logger().Error("parse failed", "err", err)
	}
	return nil, false
}

// evaluator runs a stage for at most timeouts.policy (internal/bounded):
// past it, or when too many abandoned evaluations still run, the verdict
// is a tempfail whatever rule_error says.
type evaluator struct {
	s   *session
	set *rules.Set
	ev  *rules.Evaluator
}

func (e *evaluator) Eval(stage rules.Stage, f *rules.Facts) rules.Verdict {
	if !e.ev.HasStage(stage) {
		return e.ev.Eval(stage, f) // no rule to wait for
	}
	var v rules.Verdict
	ev := e.ev
	timeout := e.s.rt.cfg.Timeouts.Policy
	err := e.s.srv.work.Run(timeout, func() { v = ev.Eval(stage, f) })
	switch {
	case err == nil:
		return v
	case errors.Is(err, bounded.ErrTimeout):
		e.ev = e.set.NewEvaluator() // the old one belongs to the abandoned goroutine
		e.s.logger().Warn("policy evaluation past timeouts.policy: tempfailed", "stage", stage.String(), "timeout", "timeouts.policy", "limit", timeout.String())
	case errors.Is(err, bounded.ErrBusy):
		e.s.logger().Warn("tempfailed: too many evaluations past their timeout still running", "stage", stage.String(), "timeout", "timeouts.policy")
	default:
		e.s.logger().Error("policy evaluation failed", "stage", stage.String(), "err", err)
	}
	return rules.Verdict{Action: rules.ActionTempfail, Reply: replyLocalError}
}
