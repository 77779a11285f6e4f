package proxy

import (
	"context"
	"crypto/tls"
	"mailgate/config"
	"net"
	"strings"
	"testing"
)

// authClient is a client past STARTTLS and EHLO, to which AUTH is offered.
func authClient(t *testing.T, addr string) *client {
	t.Helper()
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("STARTTLS", "220")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c = tc
	c.br.Reset(tc)
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "AUTH PLAIN LOGIN") {
		t.Fatalf("AUTH not offered after STARTTLS: %q", ehlo)
	}
	return c
}

// redirectDialer connects every upstream address to one test address, so a
// test can configure a non-loopback upstream.
type redirectDialer struct{ to string }

func (d redirectDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.to)
}

// startServerOpts is startServer with the caller's options (a upstream.Dialer); the
// logger is set here.
func startServerOpts(t *testing.T, cfg *config.Config, opts Options) (string, *testLog) {
	t.Helper()
	lg := &testLog{}
	opts.Logger = NewLogger(lg, "json", "debug")
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
	})
	return srv.Addrs()[0].String(), lg
}

// TestAuthResponseValidated: a SASL response that is not base64 (a bare CR
// that a lenient upstream takes as a line end, a NUL, a space, an
// over-long line) never reaches the upstream; the client gets 501 5.5.2,
// the upstream's exchange is cancelled with "*", and the session goes on.
func TestAuthResponseValidated(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.TLSCert, cfg.TLSKey = writeCert(t)
	cfg.Auth = "relay"
	cfg.Limits.Errors = 100
	addr, _, lg := startServer(t, cfg, nil)
	smuggle := "Ym9i\rMAIL FROM:<evil@example.org>\rRCPT TO:<victim@example.net>\rDATA\rSubject: smuggled\r\r.\r"
	for _, tc := range []struct{ name, line string }{
		{"bare CR", smuggle},
		{"NUL", "Ym9i\x00c2VjcmV0"},
		{"space", "Ym9i c2VjcmV0"},
		{"data after padding", "Ym9i=A"},
		{"too long", strings.Repeat("A", maxSASLResponse+4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := authClient(t, addr)
			c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
			c.cmd(tc.line, "501 5.5.2")
			c.cmd("NOOP", "250")
			c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
			c.cmd("Ym9i", "334 UGFzc3dvcmQ6")
			c.cmd("c2VjcmV0", "235")
		})
	}
	for _, tc := range []struct{ name, line string }{
		{"two arguments", "AUTH PLAIN AGJvYgBzZWNyZXQ= MAIL"},
		{"tab", "AUTH PLAIN AGJvYgBz\tZWNyZXQ="},
		{"cancel as initial response", "AUTH PLAIN *"},
	} {
		t.Run("initial "+tc.name, func(t *testing.T) {
			c := authClient(t, addr)
			c.cmd(tc.line, "501 5.5.2")
			c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", "235")
		})
	}
	up.mu.Lock()
	raw := append([]string(nil), up.authRaw...)
	up.mu.Unlock()
	for _, l := range raw {
		if l != "*\r\n" && l != "Ym9i\r\n" && l != "c2VjcmV0\r\n" {
			t.Errorf("upstream got AUTH line %q", l)
		}
	}
	for _, cmd := range up.commands() {
		if strings.HasPrefix(cmd, "MAIL") || strings.HasPrefix(cmd, "AUTH") && cmd != "AUTH LOGIN" && cmd != "AUTH PLAIN AGJvYgBzZWNyZXQ=" {
			t.Errorf("upstream got %q", cmd)
		}
	}
	if txs := up.transactions(); len(txs) != 0 {
		t.Errorf("upstream transactions: %+v", txs)
	}
	waitFor(t, "refusal log", func() bool { return strings.Contains(lg.String(), "AUTH refused: malformed response") })
	if out := lg.String(); strings.Contains(out, "Ym9i") || strings.Contains(out, "smuggled") {
		t.Errorf("AUTH responses in the log:\n%s", out)
	}
}

// TestAuthNeedsSafeUpstream: to an upstream that is not loopback, AUTH is
// only relayed over TLS with a verified certificate. A STARTTLS stripped
// from the upstream's EHLO (a man in the middle) leaves clear text: AUTH
// gets 454 4.7.0 and the credentials never leave; mail still flows.
func TestAuthNeedsSafeUpstream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		selfTLS bool // the upstream offers STARTTLS with an unverifiable certificate
		want    string
	}{
		{"stripped STARTTLS", false, "454 4.7.0"},
		{"unverified certificate", true, "451 4.4.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			if tc.selfTLS {
				cert, key := writeCert(t)
				kp, err := tls.LoadX509KeyPair(cert, key)
				if err != nil {
					t.Fatal(err)
				}
				up.tlsConfig = &tls.Config{Certificates: []tls.Certificate{kp}}
			}
			up.url()
			cfg := testConfig(t, "smtp://192.0.2.25:25")
			cfg.TLSCert, cfg.TLSKey = writeCert(t)
			cfg.Auth = "relay"
			addr, lg := startServerOpts(t, cfg, Options{Dialer: redirectDialer{to: up.l.Addr().String()}})
			c := authClient(t, addr)
			c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", tc.want)
			c.cmd("AUTH LOGIN", tc.want)
			if !tc.selfTLS {
				if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
					t.Errorf("mail after a refused AUTH: %q", rp)
				}
				waitFor(t, "refusal log", func() bool { return strings.Contains(lg.String(), "AUTH refused: the upstream connection") })
			}
			for _, cmd := range up.commands() {
				if strings.HasPrefix(cmd, "AUTH") {
					t.Errorf("upstream got %q", cmd)
				}
			}
			if strings.Contains(lg.String(), "AGJvYgBzZWNyZXQ") {
				t.Error("credentials in the log")
			}
		})
	}
}

// TestRefusedAuthNotLogged: when AUTH is refused (off, before STARTTLS,
// upstream down, upstream not safe), the client's next lines are its
// credentials in base64, refused as unknown commands; at debug level the
// log names them "<redacted>" and never holds their text.
func TestRefusedAuthNotLogged(t *testing.T) {
	secrets := []string{"Ym9i", "c2VjcmV0", "AGJvYgBzZWNyZXQ=", "UzNjcmV0UGFzc3dvcmQ="}
	for _, tc := range []struct {
		name string
		want string // reply to AUTH
		tls  bool   // STARTTLS first
		cfg  func(cfg *config.Config, up *fakeUpstream) Options
	}{
		{"auth off", "502 5.5.1", false, func(cfg *config.Config, up *fakeUpstream) Options { return Options{} }},
		{"before STARTTLS", "530 5.7.0", false, func(cfg *config.Config, up *fakeUpstream) Options {
			cfg.TLSCert, cfg.TLSKey = writeCert(t)
			cfg.Auth = "relay"
			return Options{}
		}},
		{"upstream down", "451 4.4.1", true, func(cfg *config.Config, up *fakeUpstream) Options {
			cfg.TLSCert, cfg.TLSKey = writeCert(t)
			cfg.Auth = "relay"
			up.l.Close()
			return Options{}
		}},
		{"upstream not safe", "454 4.7.0", true, func(cfg *config.Config, up *fakeUpstream) Options {
			cfg.TLSCert, cfg.TLSKey = writeCert(t)
			cfg.Auth = "relay"
			addr := up.l.Addr().String()
			cfg.Upstream = "smtp://192.0.2.25:25"
			return Options{Dialer: redirectDialer{to: addr}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newFakeUpstream(t)
			cfg := testConfig(t, up.url())
			cfg.Limits.Errors = 100
			addr, lg := startServerOpts(t, cfg, tc.cfg(cfg, up))
			var c *client
			if tc.tls {
				c = authClient(t, addr)
			} else {
				c = dialClient(t, addr)
				c.cmd("EHLO client.test", "250")
			}
			c.cmd("AUTH LOGIN", tc.want)
			c.cmd("Ym9i", "500 5.5.2")
			c.cmd("c2VjcmV0", "500 5.5.2")
			c.cmd("AUTH PLAIN", tc.want)
			c.cmd("AGJvYgBzZWNyZXQ=", "500 5.5.2")
			c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", tc.want)
			c.cmd("UzNjcmV0UGFzc3dvcmQ= x", "500 5.5.2")
			c.cmd("QUIT", "221")
			waitFor(t, "refusal log", func() bool { return strings.Count(lg.String(), `"msg":"bad command"`) == 4 })
			out := lg.String()
			if n := strings.Count(out, `"verb":"<redacted>"`); n != 4 {
				t.Errorf("%d refused lines logged as <redacted>, want 4", n)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("secret %q in the log:\n%s", s, out)
				}
			}
		})
	}
}
