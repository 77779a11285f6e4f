// Package upstream is where accepted mail goes: an SMTP server (with
// XCLIENT or XFORWARD naming the original client) or the embedded Maildir
// delivery. The proxy and the milter front-end, and `mailgate quarantine
// release`, deliver through it.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mailgate/config"
	"mailgate/internal/smtpline"
	"mailgate/rules"
	"net"
	"strconv"
	"strings"
	"time"
)

// Reply is an SMTP reply with its enhanced status code (the one reply
// type of rules, the front-ends and the upstream).
type Reply = rules.Reply

func r(code, a, b, c int, text string) Reply {
	return Reply{Code: code, Enhanced: [3]int{a, b, c}, Text: text}
}

// Param is one ESMTP parameter of MAIL or RCPT (RFC 5321 §4.1.2).
type Param struct {
	Key   string // upper case
	Value string // "" when the parameter has no value
}

func (p Param) String() string {
	if p.Value == "" {
		return p.Key
	}
	return p.Key + "=" + p.Value
}

// Client is what the upstream is told about the original client
// (XFORWARD or XCLIENT, Postfix XFORWARD_README).
type Client struct {
	Name  string // reverse DNS name, "[UNAVAILABLE]" when unknown
	Addr  string
	Port  int
	Proto string // "SMTP" or "ESMTP"
	Helo  string
}

// Upstream is where accepted mail goes: an SMTP server or the embedded
// Maildir delivery.
type Upstream interface {
	// Open starts one session with the upstream, kept for the client's
	// session (DESIGN "The SMTP side": connected at the first MAIL).
	Open(ctx context.Context, ci Client) (Conn, error)
}

// Conn is one upstream session. A non-nil error means the
// connection failed (the session drops it and answers 4xx); a Reply is the
// upstream's answer, relayed to the client.
type Conn interface {
	Mail(ctx context.Context, from string, params []Param, ci Client) (Reply, error)
	Rcpt(ctx context.Context, to string, params []Param) (Reply, error)
	// Data sends the message (canonical bytes, not dot-stuffed) and
	// returns the reply to the final dot.
	Data(ctx context.Context, msg io.Reader) (Reply, error)
	Rset(ctx context.Context) (Reply, error)
	// Quit ends the session politely and closes it.
	Quit(ctx context.Context)
	Close() error
}

// Dialer opens upstream connections; tests replace it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrFailed wraps every upstream transport failure.
var ErrFailed = errors.New("upstream failed")

// smtpUpstream relays to an SMTP server.
type smtpUpstream struct {
	addr           string
	hostname       string
	xforward       bool
	xclient        bool
	dialer         Dialer
	connectTimeout time.Duration
	timeout        time.Duration
}

var _ Upstream = (*smtpUpstream)(nil)

// New builds the upstream of a config's URL.
func New(c *config.Config, d Dialer) (Upstream, error) {
	switch {
	case strings.HasPrefix(c.Upstream, "smtp://"):
		if d == nil {
			d = &net.Dialer{}
		}
		return &smtpUpstream{
			addr: strings.TrimSuffix(strings.TrimPrefix(c.Upstream, "smtp://"), "/"), hostname: c.Hostname,
			xforward: c.XForward, xclient: c.XClient, dialer: d,
			connectTimeout: c.Timeouts.UpstreamConnect, timeout: c.Timeouts.Upstream,
		}, nil
	case strings.HasPrefix(c.Upstream, "maildir:"):
		return &maildirUpstream{dir: strings.TrimPrefix(c.Upstream, "maildir:"), hostname: c.Hostname}, nil
	}
	return nil, fmt.Errorf("proxy: unknown upstream %q", c.Upstream)
}

type smtpConn struct {
	u    *smtpUpstream
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	ext  map[string]string // EHLO keywords (upper case) → parameters
	sent []string          // XFORWARD attributes supported
	xci  *Client           // the identity XCLIENT gave; nil: no XCLIENT sent
}

func (u *smtpUpstream) Open(ctx context.Context, ci Client) (_ Conn, rerr error) {
	dctx, cancel := context.WithTimeout(ctx, u.connectTimeout)
	defer cancel()
	nc, err := u.dialer.DialContext(dctx, "tcp", u.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %v", ErrFailed, u.addr, err)
	}
	c := &smtpConn{u: u, c: nc, br: bufio.NewReaderSize(nc, 4096), bw: bufio.NewWriter(nc)}
	defer func() {
		if rerr != nil {
			nc.Close()
		}
	}()
	greet, err := c.readReply(dctx)
	if err != nil {
		return nil, err
	}
	if greet.Code != 220 {
		return nil, fmt.Errorf("%w: greeting %q", ErrFailed, greet.String())
	}
	if err := c.ehlo(dctx); err != nil {
		return nil, err
	}
	if _, ok := c.ext["STARTTLS"]; ok {
		if err := c.starttls(dctx); err != nil {
			return nil, err
		}
	}
	if offered, ok := c.ext["XCLIENT"]; ok && u.xclient {
		if err := c.xclient(dctx, ci, offered); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// xclient makes the upstream evaluate its own restrictions (relay,
// check_client_access, mynetworks) on the original client instead of on
// mailgate (Postfix XCLIENT_README; README "Set-up 1"). The reply is a new
// 220 greeting, after which the session starts over with EHLO. That EHLO
// carries the client's own HELO name: Postfix takes the name of the last
// EHLO for its helo restrictions and its Received field, over XCLIENT's
// HELO attribute. Postfix accepts one XCLIENT per connection from an
// authorized host (a second one gets 550 5.7.0, the new client is not
// authorized), so a new client identity needs a new upstream session.
func (c *smtpConn) xclient(ctx context.Context, ci Client, offered string) error {
	rp, err := c.cmd(ctx, "XCLIENT "+c.attrs(ci, offered))
	if err != nil {
		return err
	}
	if rp.Code != 220 {
		return fmt.Errorf("%w: XCLIENT refused: %q", ErrFailed, rp.String())
	}
	helo := ci.Helo
	if helo == "" || helo == "[UNAVAILABLE]" || helo == "[TEMPUNAVAIL]" {
		helo = c.u.hostname
	}
	if err := c.ehloAs(ctx, helo); err != nil {
		return err
	}
	c.xci = &ci
	return nil
}

// xclientIdentity returns the client identity this session's XCLIENT gave
// the upstream; false when none was sent.
func (c *smtpConn) XclientIdentity() (Client, bool) {
	if c.xci == nil {
		return Client{}, false
	}
	return *c.xci, true
}

func (c *smtpConn) ehlo(ctx context.Context) error { return c.ehloAs(ctx, c.u.hostname) }

func (c *smtpConn) ehloAs(ctx context.Context, name string) error {
	rp, err := c.cmd(ctx, "EHLO "+name)
	if err != nil {
		return err
	}
	c.ext = map[string]string{}
	if rp.Code/100 == 4 {
		// A 4xx (421 above all) to EHLO ends the attempt: RFC 5321 §3.8
		// says a 421 closes the session, so HELO would only read EOF.
		return fmt.Errorf("%w: EHLO refused: %q", ErrFailed, rp.String())
	}
	if rp.Code != 250 {
		rp, err = c.cmd(ctx, "HELO "+name)
		if err != nil {
			return err
		}
		if rp.Code != 250 {
			return fmt.Errorf("%w: HELO refused: %q", ErrFailed, rp.String())
		}
		return nil
	}
	lines := strings.Split(rp.Text, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		c.ext[strings.ToUpper(k)] = v
	}
	return nil
}

// starttls upgrades the connection (RFC 3207). QUIRK: the upstream's
// certificate is not verified when it is a loopback address, which is how
// mailgate normally sits in front of its MTA; elsewhere it is verified
// against the host name of the upstream URL.
func (c *smtpConn) starttls(ctx context.Context) error {
	rp, err := c.cmd(ctx, "STARTTLS")
	if err != nil {
		return err
	}
	if rp.Code != 220 {
		return nil // go on in clear text, as an MTA would
	}
	host, _, _ := splitHostPort(c.u.addr)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		cfg.InsecureSkipVerify = true
	}
	tc := tls.Client(c.c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("%w: TLS handshake: %v", ErrFailed, err)
	}
	c.c = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return c.ehlo(ctx)
}

// attrs builds XFORWARD/XCLIENT attributes the upstream announced.
func (c *smtpConn) attrs(ci Client, offered string) string {
	have := map[string]bool{}
	for _, a := range strings.Fields(strings.ToUpper(offered)) {
		have[a] = true
	}
	name := ci.Name
	if name == "" {
		name = "[UNAVAILABLE]"
	}
	var out []string
	add := func(k, v string) {
		if have[k] && v != "" {
			out = append(out, k+"="+smtpline.XtextEncode(v))
		}
	}
	add("NAME", name)
	add("ADDR", ci.Addr)
	if ci.Port > 0 {
		add("PORT", strconv.Itoa(ci.Port))
	}
	add("PROTO", ci.Proto)
	add("HELO", ci.Helo)
	return strings.Join(out, " ")
}

func (c *smtpConn) deadline(ctx context.Context) {
	d := time.Now().Add(c.u.timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	c.c.SetDeadline(d)
}

func (c *smtpConn) cmd(ctx context.Context, line string) (Reply, error) {
	c.deadline(ctx)
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		return Reply{}, fmt.Errorf("%w: writing %s: %v", ErrFailed, verbOf(line), err)
	}
	rp, err := c.readReply(ctx)
	if err == nil && rp.Code == 421 {
		// RFC 5321 §3.8: 421 closes the session, most often an idle
		// timeout sent while mailgate was still deciding. It is the
		// upstream failing, never an answer to relay as the verdict.
		return rp, fmt.Errorf("%w: %s answered %q", ErrFailed, verbOf(line), rp.String())
	}
	return rp, err
}

func verbOf(line string) string {
	v, _, _ := strings.Cut(line, " ")
	return v
}

// readReply reads one (multi-line) reply, bounded in lines and bytes.
func (c *smtpConn) readReply(ctx context.Context) (Reply, error) {
	c.deadline(ctx)
	var lines []string
	for len(lines) < 100 {
		l, err := smtpline.ReadLine(c.br, 4096)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: reading reply: %v", ErrFailed, err)
		}
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			rp, err := ParseReply(lines)
			if err != nil {
				return Reply{}, fmt.Errorf("%w: %v", ErrFailed, err)
			}
			return rp, nil
		}
	}
	return Reply{}, fmt.Errorf("%w: reply too long", ErrFailed)
}

func (c *smtpConn) Mail(ctx context.Context, from string, params []Param, ci Client) (Reply, error) {
	if offered, ok := c.ext["XFORWARD"]; ok && c.u.xforward && c.xci == nil {
		// Postfix resets XFORWARD attributes after each transaction, so
		// they go before every MAIL. After XCLIENT they would only
		// repeat what it said: XCLIENT lasts for the whole session.
		if a := c.attrs(ci, offered); a != "" {
			rp, err := c.cmd(ctx, "XFORWARD "+a)
			if err != nil {
				return rp, err
			}
			if rp.Code != 250 {
				return Reply{}, fmt.Errorf("%w: XFORWARD refused: %q", ErrFailed, rp.String())
			}
		}
	}
	return c.cmd(ctx, "MAIL FROM:<"+from+">"+JoinParams(params))
}

// JoinParams formats parameters as they follow the path in MAIL or RCPT:
// " KEY=VALUE" each.
func JoinParams(ps []Param) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteByte(' ')
		b.WriteString(p.String())
	}
	return b.String()
}

func (c *smtpConn) Rcpt(ctx context.Context, to string, params []Param) (Reply, error) {
	return c.cmd(ctx, "RCPT TO:<"+to+">"+JoinParams(params))
}

func (c *smtpConn) Data(ctx context.Context, msg io.Reader) (Reply, error) {
	rp, err := c.cmd(ctx, "DATA")
	if err != nil || rp.Code != 354 {
		return rp, err
	}
	c.deadline(ctx)
	// The command buffer is empty after cmd; the message goes to the
	// connection directly in the dot writer's 64 KiB writes.
	if err := c.bw.Flush(); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", ErrFailed, err)
	}
	dw := NewDotWriter(&deadlineWriter{w: c.c, c: c.c, timeout: c.u.timeout})
	if _, err := io.Copy(dw, msg); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", ErrFailed, err)
	}
	if err := dw.Close(); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", ErrFailed, err)
	}
	if err := c.bw.Flush(); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", ErrFailed, err)
	}
	return c.readReply(ctx)
}

// deadlineWriter extends the write deadline before each write, so a long
// message is bounded per write, not as a whole.
type deadlineWriter struct {
	w       io.Writer
	c       net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.w.Write(p)
}

// Raw sends one line and returns the reply (AUTH relaying).
func (c *smtpConn) Raw(ctx context.Context, line string) (Reply, error) { return c.cmd(ctx, line) }

func (c *smtpConn) Rset(ctx context.Context) (Reply, error) { return c.cmd(ctx, "RSET") }

func (c *smtpConn) Quit(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c.cmd(qctx, "QUIT")
	c.c.Close()
}

// CredentialsSafe reports whether this upstream session may carry SASL
// credentials: the upstream is on the loopback interface (configured as a
// loopback address or "localhost", as starttls treats it), or the
// connection is TLS with a certificate verified against the upstream's
// name. Anything else is clear text a man in the middle can read (a
// STARTTLS stripped from the upstream's EHLO, or refused) or TLS to an
// unknown party.
func (c *smtpConn) CredentialsSafe() bool {
	host, _, _ := net.SplitHostPort(c.u.addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return true
	}
	tc, ok := c.c.(*tls.Conn)
	return ok && len(tc.ConnectionState().VerifiedChains) > 0
}

func (c *smtpConn) Close() error { return c.c.Close() }

// splitHostPort is net.SplitHostPort tolerating a missing port.
func splitHostPort(hp string) (string, string, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, "", err
	}
	return h, p, nil
}

// ParseReply turns the lines of an upstream reply (without CRLF,
// continuation markers included) into a Reply. The enhanced code is taken
// from the first line, and removed from each line that carries it.
func ParseReply(lines []string) (Reply, error) {
	var rp Reply
	if len(lines) == 0 {
		return rp, errors.New("upstream: empty reply")
	}
	texts := make([]string, 0, len(lines))
	for i, l := range lines {
		if len(l) < 3 {
			return rp, errors.New("upstream: short reply line")
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil || code < 200 || code > 599 {
			return rp, errors.New("upstream: bad reply code")
		}
		if i == 0 {
			rp.Code = code
		} else if code != rp.Code {
			return rp, errors.New("upstream: inconsistent reply codes")
		}
		text := ""
		if len(l) > 4 {
			text = l[4:]
		}
		if enh, rest, ok := cutEnhanced(text, code); ok {
			if i == 0 {
				rp.Enhanced = enh
			}
			if enh == rp.Enhanced {
				text = rest
			}
		}
		texts = append(texts, text)
	}
	rp.Text = strings.Join(texts, "\n")
	return rp, nil
}

// cutEnhanced splits "5.1.1 text" into the code and "text"; the class must
// match the reply's.
func cutEnhanced(s string, code int) ([3]int, string, bool) {
	var e [3]int
	head, rest, _ := strings.Cut(s, " ")
	parts := strings.Split(head, ".")
	if len(parts) != 3 {
		return e, s, false
	}
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return e, s, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return e, s, false
		}
		e[i] = n
	}
	if e[0] != code/100 {
		return e, s, false
	}
	return e, rest, true
}
