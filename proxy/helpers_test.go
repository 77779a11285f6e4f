package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"mailgate/config"
	"mailgate/internal/bounded"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// upTx is one transaction the fake upstream received.
type upTx struct {
	From  string
	Rcpts []string
	Data  []byte // as an unsuspecting server reads it: unstuffed, line ends as sent
	Xfwd  string // the XFORWARD line before the MAIL, if any
}

// fakeUpstream is a recording SMTP server. On purpose it ends DATA at a
// line "." ended by LF or CRLF (like lenient MTAs), so that a smuggled end
// of data would show up as an extra transaction.
type fakeUpstream struct {
	t          testing.TB
	l          net.Listener
	mu         sync.Mutex
	once       sync.Once
	txs        []upTx
	cmds       []string
	rejectRcpt map[string]string // address → reply line
	dataReply  string            // reply to the final dot; "" = 250
	noXforward bool
	dropAfter  bool        // close the connection after each DATA (an idle timeout)
	tlsConfig  *tls.Config // offer STARTTLS with this
	xclient    bool        // offer XCLIENT
	tlsUsed    bool
	xclientArg string
	// fault makes the upstream fail at one point: "connect", "greet",
	// "ehlo", "mail", "rcpt", "data" (drop when the command arrives),
	// "body" (drop mid-message), "dot" (drop after the final dot, no
	// reply), "stall" (no reply to the final dot).
	fault string
	conns int
	// authRaw holds the AUTH continuation lines as received, line
	// ends included.
	authRaw []string
	// idle makes the upstream answer 421 and close after this long
	// without a command, as Postfix's smtpd_timeout does.
	idle time.Duration
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUpstream{t: t, l: l, rejectRcpt: map[string]string{}}
	t.Cleanup(func() { l.Close() })
	return u
}

// url starts accepting (so tests set the fake's options before it serves)
// and returns the upstream URL.
func (u *fakeUpstream) url() string {
	u.once.Do(func() {
		go func() {
			for {
				c, err := u.l.Accept()
				if err != nil {
					return
				}
				go u.serve(c)
			}
		}()
	})
	return "smtp://" + u.l.Addr().String()
}

func (u *fakeUpstream) transactions() []upTx {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upTx(nil), u.txs...)
}

func (u *fakeUpstream) commands() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.cmds...)
}

func (u *fakeUpstream) serve(c net.Conn) {
	defer func() { c.Close() }()
	u.mu.Lock()
	u.conns++
	u.mu.Unlock()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	w := func(s string) { io.WriteString(c, s+"\r\n") }
	switch u.fault {
	case "connect":
		return
	case "greet":
		w("554 5.3.2 upstream.test not accepting mail")
		return
	}
	w("220 upstream.test ESMTP fake")
	var cur *upTx
	xfwd := ""
	for {
		if u.idle > 0 {
			c.SetReadDeadline(time.Now().Add(u.idle))
		}
		line, err := br.ReadString('\n')
		if ne, ok := err.(net.Error); ok && ne.Timeout() && u.idle > 0 {
			w("421 4.4.2 upstream.test Error: timeout exceeded")
			return
		}
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		u.mu.Lock()
		u.cmds = append(u.cmds, line)
		u.mu.Unlock()
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		if u.fault != "" && strings.EqualFold(u.fault, verb) {
			return
		}
		switch verb {
		case "EHLO":
			ext := []string{"upstream.test", "PIPELINING"}
			if u.tlsConfig != nil && !u.tlsUsed {
				ext = append(ext, "STARTTLS")
			}
			if u.xclient {
				ext = append(ext, "XCLIENT NAME ADDR PROTO HELO")
			}
			if !u.noXforward {
				ext = append(ext, "AUTH PLAIN LOGIN", "XFORWARD NAME ADDR PROTO HELO")
			}
			ext = append(ext, "8BITMIME")
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				w("250" + sep + e)
			}
		case "STARTTLS":
			w("220 2.0.0 Ready to start TLS")
			tc := tls.Server(c, u.tlsConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			c = tc
			br = bufio.NewReader(c)
			u.mu.Lock()
			u.tlsUsed = true
			u.mu.Unlock()
		case "XCLIENT":
			u.mu.Lock()
			u.xclientArg = line
			u.mu.Unlock()
			w("220 upstream.test ESMTP fake")
		case "AUTH":
			f := strings.Fields(line)
			if len(f) == 3 && strings.ToUpper(f[1]) == "PLAIN" {
				if f[2] == "AGJvYgBzZWNyZXQ=" { // \0bob\0secret
					w("235 2.7.0 Authentication successful")
				} else {
					w("535 5.7.8 Error: authentication failed")
				}
				continue
			}
			cont := func(challenge string) (string, bool) {
				w("334 " + challenge)
				l, _ := br.ReadString('\n')
				u.mu.Lock()
				u.authRaw = append(u.authRaw, l)
				u.mu.Unlock()
				if strings.TrimSpace(l) == "*" {
					w("501 5.7.0 Authentication aborted")
					return "", false
				}
				return l, true
			}
			user, ok := cont("VXNlcm5hbWU6")
			if !ok {
				continue
			}
			pass, ok := cont("UGFzc3dvcmQ6")
			if !ok {
				continue
			}
			if strings.TrimSpace(user) == "Ym9i" && strings.TrimSpace(pass) == "c2VjcmV0" {
				w("235 2.7.0 Authentication successful")
			} else {
				w("535 5.7.8 Error: authentication failed")
			}
		case "XFORWARD":
			xfwd = line
			w("250 2.0.0 Ok")
		case "MAIL":
			cur = &upTx{From: between(line), Xfwd: xfwd}
			w("250 2.1.0 Ok")
		case "RCPT":
			a := between(line)
			if rp, ok := u.rejectRcpt[a]; ok {
				w(rp)
				continue
			}
			cur.Rcpts = append(cur.Rcpts, a)
			w("250 2.1.5 Ok")
		case "DATA":
			if cur == nil || len(cur.Rcpts) == 0 {
				w("554 5.5.1 Error: no valid recipients")
				continue
			}
			w("354 End data with <CR><LF>.<CR><LF>")
			var data []byte
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				if strings.HasPrefix(l, ".") {
					l = l[1:]
				}
				data = append(data, l...)
				if u.fault == "body" {
					return
				}
			}
			switch u.fault {
			case "dot":
				return
			case "stall":
				time.Sleep(3 * time.Second)
				return
			}
			cur.Data = data
			u.mu.Lock()
			u.txs = append(u.txs, *cur)
			u.mu.Unlock()
			cur, xfwd = nil, ""
			if u.dataReply != "" {
				w(u.dataReply)
			} else {
				w("250 2.0.0 Ok: queued as FAKE")
			}
			if u.dropAfter {
				return
			}
		case "RSET":
			cur, xfwd = nil, ""
			w("250 2.0.0 Ok")
		case "QUIT":
			w("221 2.0.0 Bye")
			return
		case "NOOP":
			w("250 2.0.0 Ok")
		default:
			w("502 5.5.2 Error: command not recognized")
		}
	}
}

func between(line string) string {
	i := strings.IndexByte(line, '<')
	j := strings.IndexByte(line, '>')
	if i < 0 || j < i {
		return ""
	}
	return line[i+1 : j]
}

// testConfig is a config for in-process tests: short timeouts, the given
// upstream.
func testConfig(t *testing.T, upstream string) *config.Config {
	c := config.Default()
	c.Hostname = "mailgate.test"
	c.Upstream = upstream
	c.Listen = []string{"127.0.0.1:0"}
	c.SpoolDir = t.TempDir()
	c.QuarantineDir = t.TempDir()
	c.Timeouts.Command = 5 * time.Second
	c.Timeouts.DataIdle = 5 * time.Second
	c.Timeouts.UpstreamConnect = 2 * time.Second
	c.Timeouts.Upstream = 5 * time.Second
	c.EmbeddedPolicy = ""
	return c
}

// loopbackForwarders trusts the test client's address (README set-up 2's
// trusted_forwarders), for tests of XFORWARD from a trusted forwarder.
var loopbackForwarders = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}

// testLog collects the server's log for assertions.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// startServer runs a Server for cfg with engine (nil: no policies) and
// returns its address; it fails the test if a session panicked.
func startServer(t *testing.T, cfg *config.Config, engine Engine) (string, *Server, *testLog) {
	t.Helper()
	return startServerWork(t, cfg, engine, nil)
}

// startServerWork is startServer with the server's bounded-work runner.
func startServerWork(t *testing.T, cfg *config.Config, engine Engine, work *bounded.Runner) (string, *Server, *testLog) {
	t.Helper()
	lg := &testLog{}
	opts := Options{Logger: NewLogger(lg, "json", "debug"), Work: work}
	if engine != nil {
		opts.LoadEngine = func(*config.Config) (Engine, error) { return engine, nil }
	}
	srv, err := NewServer(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		srv.Close()
		if n := srv.Panics(); n != 0 {
			t.Errorf("%d session panics; log:\n%s", n, lg.String())
		}
		if testing.Verbose() && t.Failed() {
			t.Logf("server log:\n%s", lg.String())
		}
	})
	return srv.Addrs()[0].String(), srv, lg
}

// client is a raw SMTP test client.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	cl.expect("220 ")
	return cl
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// reply reads one (multi-line) reply and returns its last line.
func (c *client) reply() string {
	c.t.Helper()
	var all []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply after %q: %v", all, err)
		}
		l = strings.TrimRight(l, "\r\n")
		all = append(all, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

// expect reads a reply and checks its start.
func (c *client) expect(prefix string) string {
	c.t.Helper()
	rp := c.reply()
	last := rp[strings.LastIndexByte(rp, '\n')+1:]
	if !strings.HasPrefix(last, prefix) {
		c.t.Fatalf("got reply %q, want %q...", rp, prefix)
	}
	return rp
}

func (c *client) cmd(line, prefix string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(prefix)
}

// sendMail runs one transaction with data (wire form: stuffed, ending with
// ".\r\n") and returns the reply to the final dot.
func (c *client) sendMail(from string, rcpts []string, wire string) string {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", "250")
	for _, r := range rcpts {
		c.cmd("RCPT TO:<"+r+">", "250")
	}
	c.cmd("DATA", "354")
	c.send(wire)
	return c.reply()
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

var _ = fmt.Sprint
var _ = context.Background
var _ = os.Getenv
var _ = slog.LevelInfo
