package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mailgate/config"
	"mailgate/upstream"
	"strconv"
	"strings"
	"testing"

	"mailgate"
	"mailgate/rules"
)

// BenchmarkDotReader measures the DATA reader's throughput on a typical
// message body (base64 lines of 76 characters).
func BenchmarkDotReader(b *testing.B) {
	for _, size := range []int{64 << 10, 4 << 20} {
		line := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=", 3)[:76] + "\r\n"
		wire := strings.Repeat(line, size/len(line)) + ".\r\n"
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			r := strings.NewReader(wire)
			br := bufio.NewReaderSize(r, 8192)
			for i := 0; i < b.N; i++ {
				r.Reset(wire)
				br.Reset(r)
				if _, err := io.Copy(io.Discard, newDotReader(br, false)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDotWriter measures the re-encoding to the upstream.
func BenchmarkDotWriter(b *testing.B) {
	msg := bytes.Repeat([]byte(strings.Repeat("x", 76)+"\r\n"), (4<<20)/78)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w := upstream.NewDotWriter(io.Discard)
		w.Write(msg)
		w.Close()
	}
}

// BenchmarkRelay sends one message per iteration through a whole session
// (client → mailgate → fake upstream) without policies, and with the
// embedded default policy (mimeparse and rules included).
func BenchmarkRelay(b *testing.B) {
	body := "Subject: bench\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat(strings.Repeat("y", 76)+"\r\n", (1<<20)/78)
	wire := stuff(body)
	for _, withPolicy := range []bool{false, true} {
		name := "no-policy"
		if withPolicy {
			name = "default-policy"
		}
		b.Run(name, func(b *testing.B) {
			cfg := config.Default()
			cfg.Upstream, cfg.Listen, cfg.SpoolDir, cfg.EmbeddedPolicy = "smtp://unused.test:25", []string{"127.0.0.1:0"}, b.TempDir(), ""
			var eng Engine
			if withPolicy {
				cfg.EmbeddedPolicy = "default.yaml"
				var err error
				if eng, err = PolicyLoader(mailgate.Tree)(cfg); err != nil {
					b.Fatal(err)
				}
			}
			opts := Options{Upstream: discardUpstream{}}
			if eng != nil {
				opts.LoadEngine = func(*config.Config) (Engine, error) { return eng, nil }
			}
			srv, err := NewServer(cfg, opts)
			if err != nil {
				b.Fatal(err)
			}
			srv.Listen()
			go srv.Serve()
			defer srv.Close()
			c := dialClient(b, srv.Addrs()[0].String())
			c.cmd("EHLO bench.test", "250")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rp := c.sendMail("a@example.org", []string{"b@example.net"}, wire); !strings.HasPrefix(rp, "250") {
					b.Fatalf("reply %q", rp)
				}
			}
		})
	}
}

// discardUpstream accepts everything and reads messages into io.Discard.
type discardUpstream struct{}

func (discardUpstream) Open(ctx context.Context, ci upstream.Client) (upstream.Conn, error) {
	return discardUpstream{}, nil
}
func (discardUpstream) Mail(ctx context.Context, from string, params []param, ci upstream.Client) (Reply, error) {
	return replyMailOK, nil
}
func (discardUpstream) Rcpt(ctx context.Context, to string, params []param) (Reply, error) {
	return replyRcptOK, nil
}
func (discardUpstream) Data(ctx context.Context, msg io.Reader) (Reply, error) {
	w := upstream.NewDotWriter(io.Discard)
	if _, err := io.Copy(w, msg); err != nil {
		return Reply{}, err
	}
	w.Close()
	return replyOK, nil
}
func (discardUpstream) Rset(ctx context.Context) (Reply, error) { return replyReset, nil }
func (discardUpstream) Quit(ctx context.Context)                {}
func (discardUpstream) Close() error                            { return nil }

// BenchmarkSmallMessage is the small-message load of the bench harness: a
// new connection per 2 KB message (EHLO, MAIL, RCPT, DATA, QUIT), as
// smtp-source and most MTAs send, with the embedded default policy.
func BenchmarkSmallMessage(b *testing.B) {
	body := "Subject: bench\r\nFrom: a@example.org\r\nTo: b@example.net\r\nMessage-ID: <1@example.org>\r\nDate: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\n" +
		strings.Repeat(strings.Repeat("z", 70)+"\r\n", 2000/72)
	wire := stuff(body)
	cfg := config.Default()
	cfg.Upstream, cfg.Listen, cfg.SpoolDir, cfg.EmbeddedPolicy = "smtp://unused.test:25", []string{"127.0.0.1:0"}, b.TempDir(), "default.yaml"
	eng, err := PolicyLoader(mailgate.Tree)(cfg)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(cfg, Options{Upstream: discardUpstream{}, LoadEngine: func(*config.Config) (Engine, error) { return eng, nil }})
	if err != nil {
		b.Fatal(err)
	}
	srv.Listen()
	go srv.Serve()
	defer srv.Close()
	addr := srv.Addrs()[0].String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := dialClient(b, addr)
		c.cmd("EHLO bench.test", "250")
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, wire); !strings.HasPrefix(rp, "250") {
			b.Fatalf("reply %q", rp)
		}
		c.cmd("QUIT", "221")
		c.c.Close()
	}
}

// BenchmarkRelayRewrite is BenchmarkRelay's message with a verdict that
// adds a header (as compliance-headers does to every message): the
// rewritten message goes upstream.
func BenchmarkRelayRewrite(b *testing.B) {
	body := "Subject: bench\r\nContent-Type: text/plain\r\n\r\n" + strings.Repeat(strings.Repeat("y", 76)+"\r\n", (1<<20)/78)
	wire := stuff(body)
	eng := &fakeEngine{decide: func(st rules.Stage, f *rules.Facts) rules.Verdict {
		if st != rules.StageData {
			return rules.Verdict{Action: rules.ActionContinue}
		}
		return rules.Verdict{Action: rules.ActionContinue, Edits: rules.Edits{
			Headers: []rules.HeaderEdit{{Op: "add", Name: "X-Classification", Value: "internal", Rule: "tag"}},
		}}
	}}
	cfg := config.Default()
	cfg.Upstream, cfg.Listen, cfg.SpoolDir, cfg.EmbeddedPolicy = "smtp://unused.test:25", []string{"127.0.0.1:0"}, b.TempDir(), ""
	srv, err := NewServer(cfg, Options{Upstream: discardUpstream{}, LoadEngine: func(*config.Config) (Engine, error) { return eng, nil }})
	if err != nil {
		b.Fatal(err)
	}
	srv.Listen()
	go srv.Serve()
	defer srv.Close()
	c := dialClient(b, srv.Addrs()[0].String())
	c.cmd("EHLO bench.test", "250")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, wire); !strings.HasPrefix(rp, "250") {
			b.Fatalf("reply %q", rp)
		}
	}
}
