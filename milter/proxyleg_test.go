package milter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"mailgate"
	"mailgate/config"
	"mailgate/proxy"
	"mailgate/upstream"
)

// proxyLeg is the SMTP proxy in process, for the differential test: its
// upstream accepts everything and keeps the last message, its log says
// the verdict and the rules.
type proxyLeg struct {
	addr string
	up   *keepUpstream
	log  *syncBuffer
}

func startProxy(t *testing.T, cfg *config.Config) *proxyLeg {
	t.Helper()
	px := &proxyLeg{up: &keepUpstream{}, log: &syncBuffer{}}
	srv, err := proxy.NewServer(cfg, proxy.Options{Logger: proxy.NewLogger(px.log, "json", "info"),
		LoadEngine: proxy.PolicyLoader(mailgate.Tree), Upstream: px.up})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeListener(l)
	t.Cleanup(func() { srv.Close() })
	px.addr = l.Addr().String()
	return px
}

// send relays one message and returns the proxy's verdict and rules (its
// transaction log line), its reply to a refusal and the bytes it relayed.
func (px *proxyLeg) send(t *testing.T, from, to string, msg []byte) (string, []string, string, []byte) {
	t.Helper()
	px.up.reset()
	px.log.Reset()
	c, err := smtp.Dial(px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reply := ""
	refused := func(err error) bool {
		var te *textproto.Error
		if errors.As(err, &te) {
			reply = fmt.Sprintf("%d %s", te.Code, te.Msg)
			return true
		}
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if !refused(c.Hello("client.example.com")) && !refused(c.Mail(from)) && !refused(c.Rcpt(to)) {
		w, err := c.Data()
		if !refused(err) {
			w.Write(msg)
			refused(w.Close())
		}
	}
	c.Quit()
	var verdict string
	var rules []string
	for _, line := range strings.Split(px.log.String(), "\n") {
		var rec struct {
			Msg     string   `json:"msg"`
			Verdict string   `json:"verdict"`
			Rules   []string `json:"rules"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "transaction" {
			verdict, rules = rec.Verdict, rec.Rules
		}
	}
	return verdict, rules, reply, px.up.last()
}

// keepUpstream accepts every command and keeps the last message.
type keepUpstream struct {
	mu  sync.Mutex
	msg []byte
}

func (u *keepUpstream) reset()       { u.mu.Lock(); u.msg = nil; u.mu.Unlock() }
func (u *keepUpstream) last() []byte { u.mu.Lock(); defer u.mu.Unlock(); return u.msg }
func (u *keepUpstream) Open(context.Context, upstream.Client) (upstream.Conn, error) {
	return keepConn{u}, nil
}

type keepConn struct{ u *keepUpstream }

var ok250 = upstream.Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "Ok"}

func (c keepConn) Mail(context.Context, string, []upstream.Param, upstream.Client) (upstream.Reply, error) {
	return ok250, nil
}
func (c keepConn) Rcpt(context.Context, string, []upstream.Param) (upstream.Reply, error) {
	return ok250, nil
}
func (c keepConn) Data(_ context.Context, r io.Reader) (upstream.Reply, error) {
	b, err := io.ReadAll(r)
	c.u.mu.Lock()
	c.u.msg = b
	c.u.mu.Unlock()
	return ok250, err
}
func (c keepConn) Rset(context.Context) (upstream.Reply, error) { return ok250, nil }
func (c keepConn) Quit(context.Context)                         {}
func (c keepConn) Close() error                                 { return nil }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Reset()         { s.mu.Lock(); s.b.Reset(); s.mu.Unlock() }
