package proxy

import (
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const cleanMsg = "From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n..two dots\r\nend\r\n"

// stuff dot-stuffs a canonical message and appends the end of data.
func stuff(msg string) string {
	lines := strings.SplitAfter(msg, "\r\n")
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	return b.String() + ".\r\n"
}

func TestRelayCleanByteExact(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, lg := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net", "c@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250 2.0.0 Ok: queued as FAKE") {
		t.Fatalf("final reply %q", rp)
	}
	c.cmd("QUIT", "221")
	txs := up.transactions()
	if len(txs) != 1 {
		t.Fatalf("upstream got %d transactions, want 1", len(txs))
	}
	if got := string(txs[0].Data); got != cleanMsg {
		t.Errorf("upstream data differs:\n got %q\nwant %q", got, cleanMsg)
	}
	if txs[0].From != "a@example.org" || strings.Join(txs[0].Rcpts, ",") != "b@example.net,c@example.net" {
		t.Errorf("envelope %+v", txs[0])
	}
	if !strings.Contains(txs[0].Xfwd, "ADDR=127.0.0.1") || !strings.Contains(txs[0].Xfwd, "HELO=client.test") {
		t.Errorf("XFORWARD line %q", txs[0].Xfwd)
	}
	waitFor(t, "transaction log line", func() bool { return strings.Contains(lg.String(), `"verdict":"accept"`) })
}

func TestRelayUpstreamReplies(t *testing.T) {
	up := newFakeUpstream(t)
	up.rejectRcpt["nobody@example.net"] = "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown"
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250 2.1.0")
	rp := c.cmd("RCPT TO:<nobody@example.net>", "550 5.1.1 <nobody@example.net>: Recipient address rejected")
	_ = rp
	c.cmd("DATA", "503 5.5.1")
	c.cmd("RCPT TO:<bob@example.net>", "250 2.1.5")
	c.cmd("DATA", "354")
	c.send(stuff(cleanMsg))
	c.expect("250 ")
	if txs := up.transactions(); len(txs) != 1 || strings.Join(txs[0].Rcpts, ",") != "bob@example.net" {
		t.Fatalf("upstream transactions %+v", txs)
	}
}

func TestMaildirUpstream(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	addr, _, _ := startServer(t, testConfig(t, "maildir:"+dir), nil)
	c := dialClient(t, addr)
	c.cmd("HELO client.test", "250")
	rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg))
	if !strings.HasPrefix(rp, "250 2.0.0 Ok: queued as ") {
		t.Fatalf("final reply %q", rp)
	}
	c.cmd("QUIT", "221")
	ents, err := os.ReadDir(filepath.Join(dir, "new"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("maildir new/: %v %v", ents, err)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "new", ents[0].Name()))
	// A local delivery: the envelope in Return-Path and Delivered-To, a
	// Received field naming mailgate, then the message with LF endings.
	head, body, _ := strings.Cut(string(got), "\nReceived: ")
	if head != "Return-Path: <a@example.org>\nDelivered-To: b@example.net" {
		t.Errorf("maildir file starts %q", head)
	}
	_, body, _ = strings.Cut(body, "\n\tfor <b@example.net>; ")
	_, body, _ = strings.Cut(body, "\n")
	if want := strings.ReplaceAll(cleanMsg, "\r\n", "\n"); body != want {
		t.Errorf("maildir file:\n got %q\nwant %q", got, want)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not empty: %v", tmp)
	}
	fi, _ := os.Stat(filepath.Join(dir, "new", ents[0].Name()))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("maildir file mode %v", fi.Mode())
	}
}

func TestUpstreamDown(t *testing.T) {
	up := newFakeUpstream(t)
	url := up.url()
	up.l.Close()
	addr, _, _ := startServer(t, testConfig(t, url), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "451 4.4.1")
	c.cmd("RCPT TO:<b@example.net>", "503")
	c.cmd("QUIT", "221")
}

func TestUpstreamFailsAtData(t *testing.T) {
	up := newFakeUpstream(t)
	up.dataReply = "451 4.3.0 Error: queue file write error"
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg))
	if !strings.HasPrefix(rp, "451 4.3.0 Error: queue file write error") {
		t.Fatalf("final reply %q, want the upstream's 451", rp)
	}
}

func TestPipelining(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	// Three transactions and a QUIT in one write (RFC 2920).
	var b strings.Builder
	for i := 0; i < 3; i++ {
		b.WriteString("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
		b.WriteString(stuff(strings.Replace(cleanMsg, "hi", "n"+string(rune('0'+i)), 1)))
	}
	b.WriteString("QUIT\r\n")
	c.send(b.String())
	for i := 0; i < 3; i++ {
		c.expect("250 2.1.0")
		c.expect("250 2.1.5")
		c.expect("354")
		c.expect("250 2.0.0")
	}
	c.expect("221")
	txs := up.transactions()
	if len(txs) != 3 {
		t.Fatalf("upstream got %d transactions, want 3", len(txs))
	}
	for i, tx := range txs {
		if !strings.Contains(string(tx.Data), "Subject: n"+string(rune('0'+i))) {
			t.Errorf("transaction %d out of order: %q", i, tx.Data)
		}
	}
}

func TestCommands(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.TrustedForwarders = loopbackForwarders // XFORWARD is offered to trusted forwarders only
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1")
	ehlo := c.cmd("EHLO client.test", "250")
	for _, ext := range []string{"PIPELINING", "SIZE ", "8BITMIME", "SMTPUTF8", "DSN", "ENHANCEDSTATUSCODES", "XFORWARD"} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO lacks %s: %q", ext, ehlo)
		}
	}
	if strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Errorf("EHLO offers STARTTLS or AUTH without tls: %q", ehlo)
	}
	c.cmd("VRFY bob", "252")
	c.cmd("EXPN list", "502")
	c.cmd("HELP", "214")
	c.cmd("NOOP", "250")
	c.cmd("FOO bar", "500 5.5.2")
	c.cmd("MAIL FROM:<a@example.org> SIZE=999999999999", "552 5.3.4")
	c.cmd("MAIL FROM:<a@example.org> FOO=bar", "555 5.5.4")
	c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1", "250")
	c.cmd("MAIL FROM:<b@example.org>", "503 5.5.1")
	c.cmd("RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net", "250")
	c.cmd("RSET", "250")
	c.cmd("RCPT TO:<b@example.net>", "503")
	c.cmd("STARTTLS", "502")
	c.cmd("AUTH PLAIN", "502")
	c.cmd("QUIT", "221")
	cmds := strings.Join(up.commands(), "\n")
	if !strings.Contains(cmds, "MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1") ||
		!strings.Contains(cmds, "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net") {
		t.Errorf("parameters not relayed:\n%s", cmds)
	}
	if !strings.Contains(cmds, "RSET") || !strings.Contains(cmds, "QUIT") {
		t.Errorf("RSET/QUIT not relayed:\n%s", cmds)
	}
}

func TestEhloHasNoEnhancedCodes(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	ehlo := c.cmd("EHLO client.test", "250")
	for _, l := range strings.Split(ehlo, "\n") {
		if strings.Contains(l, "2.0.0") {
			t.Errorf("EHLO line with an enhanced code: %q", l)
		}
	}
	if !strings.Contains(ehlo, "250-PIPELINING") {
		t.Errorf("EHLO %q", ehlo)
	}
}

func TestUpstreamReconnect(t *testing.T) {
	up := newFakeUpstream(t)
	up.dropAfter = true
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	for i := 0; i < 3; i++ {
		if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
			t.Fatalf("message %d: %q", i, rp)
		}
	}
	if n := len(up.transactions()); n != 3 {
		t.Fatalf("upstream got %d messages, want 3", n)
	}
}

func Test8BitAndSMTPUTF8(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	msg := "From: jörg@exämple.org\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄrger \xff\xfe bytes\r\n"
	c.cmd("MAIL FROM:<jörg@exämple.org> BODY=8BITMIME SMTPUTF8", "250")
	c.cmd("RCPT TO:<bob@exämple.net>", "250")
	c.cmd("DATA", "354")
	c.send(stuff(msg))
	c.expect("250")
	c.cmd("MAIL FROM:<jörg@exämple.org>", "553 5.6.7")
	txs := up.transactions()
	if len(txs) != 1 || string(txs[0].Data) != msg || txs[0].Rcpts[0] != "bob@exämple.net" {
		t.Fatalf("upstream %+v", txs)
	}
	if cmds := strings.Join(up.commands(), "\n"); !strings.Contains(cmds, "MAIL FROM:<jörg@exämple.org> BODY=8BITMIME SMTPUTF8") {
		t.Errorf("MAIL not relayed with its parameters:\n%s", cmds)
	}
}

func TestAuthRelay(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.TLSCert, cfg.TLSKey = writeCert(t)
	cfg.Auth = "relay"
	addr, _, lg := startServer(t, cfg, nil)
	tlsClient := func() *client {
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
	c := tlsClient()
	c.cmd("AUTH PLAIN AGJvYgB3cm9uZw==", "535 5.7.8")
	c.cmd("AUTH PLAIN AGJvYgBzZWNyZXQ=", "235 2.7.0")
	c.cmd("QUIT", "221")
	c = tlsClient()
	c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6")
	c.cmd("Ym9i", "334 UGFzc3dvcmQ6")
	c.cmd("c2VjcmV0", "235")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	waitFor(t, "auth log", func() bool { return strings.Contains(lg.String(), `"user":"bob"`) })
	if strings.Contains(lg.String(), "c2VjcmV0") || strings.Contains(lg.String(), "AGJvYgBzZWNyZXQ") {
		t.Error("AUTH secrets in the log")
	}
}

func TestUpstreamStartTLSAndXclient(t *testing.T) {
	up := newFakeUpstream(t)
	cert, key := writeCert(t)
	kp, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	up.tlsConfig = &tls.Config{Certificates: []tls.Certificate{kp}}
	up.xclient = true
	cfg := testConfig(t, up.url())
	cfg.XClient = true
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	if rp := c.sendMail("a@example.org", []string{"b@example.net"}, stuff(cleanMsg)); !strings.HasPrefix(rp, "250") {
		t.Fatalf("final reply %q", rp)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if !up.tlsUsed {
		t.Error("upstream STARTTLS not used")
	}
	if !strings.Contains(up.xclientArg, "ADDR=127.0.0.1") || !strings.Contains(up.xclientArg, "HELO=client.test") {
		t.Errorf("XCLIENT %q", up.xclientArg)
	}
	if len(up.txs) != 1 || string(up.txs[0].Data) != cleanMsg {
		t.Errorf("upstream transactions %+v", up.txs)
	}
}

// TestPipeliningLarge: large pipelined messages are read from the
// connection in the DATA reader's own 64 KiB reads; the commands read with
// the end of one message must still be the next ones run, in order, and
// every message must reach the upstream whole.
func TestPipeliningLarge(t *testing.T) {
	up := newFakeUpstream(t)
	addr, _, _ := startServer(t, testConfig(t, up.url()), nil)
	c := dialClient(t, addr)
	c.cmd("EHLO client.test", "250")
	var b strings.Builder
	var msgs []string
	for i := 0; i < 4; i++ {
		msg := "Subject: n" + string(rune('0'+i)) + "\r\n\r\n" + strings.Repeat(strings.Repeat(string(rune('a'+i)), 70)+"\r\n.dot\r\n", 1500+i*777)
		msgs = append(msgs, msg)
		b.WriteString("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
		b.WriteString(stuff(msg))
	}
	b.WriteString("QUIT\r\n")
	done := make(chan struct{})
	go func() { defer close(done); io.WriteString(c.c, b.String()) }()
	for range msgs {
		c.expect("250 2.1.0")
		c.expect("250 2.1.5")
		c.expect("354")
		c.expect("250 2.0.0")
	}
	c.expect("221")
	<-done
	txs := up.transactions()
	if len(txs) != len(msgs) {
		t.Fatalf("upstream got %d transactions, want %d", len(txs), len(msgs))
	}
	for i, tx := range txs {
		if string(tx.Data) != msgs[i] {
			t.Errorf("transaction %d: upstream got %d bytes, want message %d (%d bytes)", i, len(tx.Data), i, len(msgs[i]))
		}
	}
}
