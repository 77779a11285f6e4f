package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mailgate/config"
	"net"
	"strconv"
	"strings"
	"time"
)

// clientInfo is what the upstream is told about the original client
// (XFORWARD or XCLIENT, Postfix XFORWARD_README).
type clientInfo struct {
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
	Open(ctx context.Context, ci clientInfo) (UpstreamConn, error)
}

// UpstreamConn is one upstream session. A non-nil error means the
// connection failed (the session drops it and answers 4xx); a Reply is the
// upstream's answer, relayed to the client.
type UpstreamConn interface {
	Mail(ctx context.Context, from string, params []param, ci clientInfo) (Reply, error)
	Rcpt(ctx context.Context, to string, params []param) (Reply, error)
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

// errUpstream wraps every upstream transport failure.
var errUpstream = errors.New("proxy: upstream failed")

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

// newUpstream builds the upstream of a config's URL.
func newUpstream(c *config.Config, d Dialer) (Upstream, error) {
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
	xci  *clientInfo       // the identity XCLIENT gave; nil: no XCLIENT sent
}

func (u *smtpUpstream) Open(ctx context.Context, ci clientInfo) (_ UpstreamConn, rerr error) {
	dctx, cancel := context.WithTimeout(ctx, u.connectTimeout)
	defer cancel()
	nc, err := u.dialer.DialContext(dctx, "tcp", u.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %v", errUpstream, u.addr, err)
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
		return nil, fmt.Errorf("%w: greeting %q", errUpstream, greet.String())
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
func (c *smtpConn) xclient(ctx context.Context, ci clientInfo, offered string) error {
	rp, err := c.cmd(ctx, "XCLIENT "+c.attrs(ci, offered))
	if err != nil {
		return err
	}
	if rp.Code != 220 {
		return fmt.Errorf("%w: XCLIENT refused: %q", errUpstream, rp.String())
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
func (c *smtpConn) xclientIdentity() (clientInfo, bool) {
	if c.xci == nil {
		return clientInfo{}, false
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
		return fmt.Errorf("%w: EHLO refused: %q", errUpstream, rp.String())
	}
	if rp.Code != 250 {
		rp, err = c.cmd(ctx, "HELO "+name)
		if err != nil {
			return err
		}
		if rp.Code != 250 {
			return fmt.Errorf("%w: HELO refused: %q", errUpstream, rp.String())
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
		return fmt.Errorf("%w: TLS handshake: %v", errUpstream, err)
	}
	c.c = tc
	c.br.Reset(tc)
	c.bw.Reset(tc)
	return c.ehlo(ctx)
}

// attrs builds XFORWARD/XCLIENT attributes the upstream announced.
func (c *smtpConn) attrs(ci clientInfo, offered string) string {
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
			out = append(out, k+"="+xtextEncode(v))
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
		return Reply{}, fmt.Errorf("%w: writing %s: %v", errUpstream, verbOf(line), err)
	}
	rp, err := c.readReply(ctx)
	if err == nil && rp.Code == 421 {
		// RFC 5321 §3.8: 421 closes the session, most often an idle
		// timeout sent while mailgate was still deciding. It is the
		// upstream failing, never an answer to relay as the verdict.
		return rp, fmt.Errorf("%w: %s answered %q", errUpstream, verbOf(line), rp.String())
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
		l, err := readLine(c.br, 4096)
		if err != nil {
			return Reply{}, fmt.Errorf("%w: reading reply: %v", errUpstream, err)
		}
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			rp, err := parseReplyLines(lines)
			if err != nil {
				return Reply{}, fmt.Errorf("%w: %v", errUpstream, err)
			}
			return rp, nil
		}
	}
	return Reply{}, fmt.Errorf("%w: reply too long", errUpstream)
}

var errLineTooLong = errors.New("proxy: line too long")

// readLine reads one line of at most max bytes, without its CRLF or LF. A
// longer line is consumed to its end and reported as errLineTooLong.
func readLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	long := false
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max+2 {
			long = true
		} else {
			buf = append(buf, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(buf) > 0 || long) {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		break
	}
	if long {
		return "", errLineTooLong
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

func (c *smtpConn) Mail(ctx context.Context, from string, params []param, ci clientInfo) (Reply, error) {
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
				return Reply{}, fmt.Errorf("%w: XFORWARD refused: %q", errUpstream, rp.String())
			}
		}
	}
	return c.cmd(ctx, "MAIL FROM:<"+from+">"+joinParams(params))
}

func joinParams(ps []param) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteByte(' ')
		b.WriteString(p.String())
	}
	return b.String()
}

func (c *smtpConn) Rcpt(ctx context.Context, to string, params []param) (Reply, error) {
	return c.cmd(ctx, "RCPT TO:<"+to+">"+joinParams(params))
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
		return Reply{}, fmt.Errorf("%w: sending message: %v", errUpstream, err)
	}
	dw := newDotWriter(&deadlineWriter{w: c.c, c: c.c, timeout: c.u.timeout})
	if _, err := io.Copy(dw, msg); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", errUpstream, err)
	}
	if err := dw.Close(); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", errUpstream, err)
	}
	if err := c.bw.Flush(); err != nil {
		return Reply{}, fmt.Errorf("%w: sending message: %v", errUpstream, err)
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

func (c *smtpConn) Close() error { return c.c.Close() }

// splitHostPort is net.SplitHostPort tolerating a missing port.
func splitHostPort(hp string) (string, string, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return hp, "", err
	}
	return h, p, nil
}
