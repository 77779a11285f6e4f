package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSizeLimit(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.MessageSize = 1000
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 200)
	rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(big))
	if !strings.HasPrefix(rp, "552 5.3.4") {
		t.Fatalf("final reply %q, want 552 5.3.4", rp)
	}
	c.cmd("NOOP", "250") // read to the real end: still in sync
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("small message after the big one: %q", rp)
	}
	if txs := up.transactions(); len(txs) != 1 {
		t.Fatalf("upstream got %d transactions, want 1", len(txs))
	}
}

func TestRecipientLimit(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.Recipients = 2
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b1@example.net>", "250")
	c.cmd("RCPT TO:<b2@example.net>", "250")
	c.cmd("RCPT TO:<b3@example.net>", "452 4.5.3")
}

func TestCommandTimeout(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.Command = 200 * time.Millisecond
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	t0 := time.Now()
	c.expect("421 4.4.2")
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func TestDataTotalTimeout(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Timeouts.DataIdle = 2 * time.Second
	cfg.Timeouts.DataTotal = 400 * time.Millisecond
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	// One byte every 50 ms: each wait is short, the whole is too long.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 40; i++ {
			if _, err := c.c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expect("421 4.4.2")
	<-done
	if txs := up.transactions(); len(txs) != 0 {
		t.Fatalf("upstream got %d transactions", len(txs))
	}
}

func TestClientDropMidData(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, lg := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send("Subject: cut\r\n\r\nhalf a message\r\n")
	c.c.Close()
	waitFor(t, "transaction log", func() bool { return strings.Contains(lg.String(), `"verdict":"client-gone"`) })
	if txs := up.transactions(); len(txs) != 0 {
		t.Fatalf("upstream got %d transactions", len(txs))
	}
	if cmds := strings.Join(up.commands(), "\n"); strings.Contains(cmds, "DATA") {
		t.Errorf("upstream saw DATA:\n%s", cmds)
	}
}

// TestSpoolFilesRemoved sends messages past spool_memory through every
// outcome and checks that the spool directory stays empty.
func TestSpoolFilesRemoved(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.SpoolMemory = 100
	cfg.Limits.MessageSize = 20000
	addr, _, _ := startServer(t, cfg, nil)
	check := func(when string) {
		t.Helper()
		ents, err := os.ReadDir(cfg.SpoolDir)
		if err != nil || len(ents) != 0 {
			t.Errorf("%s: spool dir holds %v (%v)", when, ents, err)
		}
	}
	body := "Subject: s\r\n\r\n" + strings.Repeat("spooled line of text\r\n", 200)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(body)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("accepted: %q", rp)
	}
	check("after accept")
	if txs := up.transactions(); len(txs) != 1 || string(txs[0].Data) != body {
		t.Fatalf("spooled message not relayed byte-exact")
	}
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(body+strings.Repeat("x", 30000)+"\r\n")); !strings.HasPrefix(rp, "552") {
		t.Fatalf("too big: %q", rp)
	}
	check("after too big")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(body+"bare\nLF\r\n")); !strings.HasPrefix(rp, "550") {
		t.Fatalf("bare LF: %q", rp)
	}
	check("after bare LF")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("DATA", "354")
	c.send(body)
	check("mid-DATA") // unlinked at creation: never visible
	c.c.Close()
	time.Sleep(100 * time.Millisecond)
	check("after client drop")
}

func TestConnectionLimit(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.Connections = 2
	addr, _, _ := startServer(t, cfg, nil)
	dialClient(t, addr)
	dialClient(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0") {
		t.Fatalf("third connection got %q", buf[:n])
	}
}

func TestTooManyErrors(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.Errors = 3
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	for i := 0; i < 4; i++ {
		c.cmd("BOGUS", "500")
	}
	c.expect("421 4.7.0")
}

// writeCert generates a self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailgate.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"mailgate.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	cert, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, kf
}

func TestStartTLS(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.TLSCert, cfg.TLSKey = writeCert(t)
	cfg.Auth = "relay"
	addr, _, lg := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	ehlo := c.cmd("EHLO client.test", "250")
	if !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO before TLS: %q", ehlo)
	}
	c.cmd("AUTH PLAIN AGJvYgBwdw==", "530 5.7.0")
	c.cmd("STARTTLS", "220")
	// TLS 1.1 must be refused.
	old := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err := old.Handshake(); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
	c = dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("STARTTLS", "220")
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c = tc
	c.br.Reset(tc)
	ehlo = c.cmd("EHLO client.test", "250")
	if strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered again: %q", ehlo)
	}
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply over TLS: %q", rp)
	}
	c.cmd("QUIT", "221")
	if txs := up.transactions(); len(txs) != 1 || string(txs[0].Data) != cleanMsg {
		t.Fatalf("upstream: %+v", txs)
	}
	waitFor(t, "tls in log", func() bool { return strings.Contains(lg.String(), `"tls":true`) })
}

func TestLogEscaping(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, lg := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	// A NUL or other control character in a command is refused; an
	// escape sequence or C1 control in an address is logged escaped.
	c.cmd("MAIL FROM:<evil\x1b[31m@example.org>", "500")
	c.cmd("MAIL FROM:<a\u0085b@example.org> SMTPUTF8", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.cmd("RSET", "250")
	waitFor(t, "transaction log", func() bool { return strings.Contains(lg.String(), `"verdict":"reset"`) })
	out := lg.String()
	if strings.Contains(out, "\u0085") || strings.Contains(out, "\x1b") {
		t.Errorf("raw control characters in the log:\n%q", out)
	}
	if !strings.Contains(out, `a\\u{85}b@example.org`) {
		t.Errorf("escaped address missing from the log:\n%s", out)
	}
	if got := escapeLog("a\r\nb\x00\u2028"); got != `a\x0d\x0ab\x00\u{2028}` {
		t.Errorf("escapeLog = %q", got)
	}
}
