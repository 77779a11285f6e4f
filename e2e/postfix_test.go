package e2e_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
	"mailgate/mimeparse"
)

const settle = 3 * time.Second // how long to wait for a delivery that must not happen

// sendGo sends msg with Go's net/smtp client.
func sendGo(t *testing.T, addr, from string, to []string, msg []byte) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	w.Write(msg)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func TestCleanMessageArrivesByteIdentical(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	msg := cleanMessage("clean1")
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
	if body := stripPostfixTrace(got[0].Data); !bytes.Equal(body, lf(msg)) {
		t.Errorf("arrived message differs from the original\n--- sent\n%s\n--- arrived\n%s", lf(msg), body)
	}
	s.spoolEmpty(t)
}

func TestExecutableRejected(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	msg := attachmentMessage("exe1", "application/octet-stream", "invoice.pdf", tinyPE())
	err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, msg)
	if err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("executable under a .pdf name: want 550, got %v", err)
	}
	if got := s.pf.WaitDelivered("inbox", 1, settle); len(got) != 0 {
		t.Fatalf("a rejected message arrived:\n%s", got[0].Data)
	}
	s.spoolEmpty(t)
}

func TestMacroDocumentStripped(t *testing.T) {
	s := startStack(t, "", "policies/office-macros.yaml")
	msg := attachmentMessage("docm1", "application/vnd.ms-word.document.macroEnabled.12", "report.docm", macroDocm(t))
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
	m, err := mimeparse.Parse(bytes.NewReader(got[0].Data), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	notice := false
	for _, p := range m.Parts {
		if p.Macros || p.Filename == "report.docm" && !strings.HasPrefix(p.ContentType, "text/") {
			t.Errorf("part %s still holds the macro document (%s, %s)", p.Path, p.ContentType, p.Filename)
		}
	}
	if bytes.Contains(got[0].Data, []byte("report.docm")) && strings.Contains(m.Text, "report.docm") {
		notice = true
	}
	if !notice {
		t.Errorf("no notice naming report.docm in the arriving message:\n%s", got[0].Data)
	}
	for _, d := range m.Defects {
		if strings.Contains(d, "boundary") {
			t.Errorf("rewritten message has MIME defect %q", d)
		}
	}
	if !bytes.Contains(got[0].Data, []byte("Please find the file attached.")) {
		t.Errorf("the text part did not survive")
	}
}

const compliancePolicy = `rules:
  - name: classify
    headers:
      add: {X-Classification: 'internal; from={{ Envelope.FromDomain }}'}
      remove: [X-Internal-Route]
`

func TestComplianceHeaders(t *testing.T) {
	s := startStack(t, "", compliancePolicy)
	msg := crlf(
		"From: Alice <alice@sender.test>",
		"To: bob@example.net",
		"X-Internal-Route: core-7.corp",
		"Subject: headers",
		"Message-ID: <hdr1@sender.test>",
		"",
		"body stays",
	)
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 {
		t.Fatalf("delivered %d, want 1", len(got))
	}
	body := string(stripPostfixTrace(got[0].Data))
	if !strings.Contains(body, "X-Classification: internal; from=sender.test\n") {
		t.Errorf("X-Classification not added as the policy says:\n%s", body)
	}
	if strings.Contains(body, "X-Internal-Route") {
		t.Errorf("X-Internal-Route not removed:\n%s", body)
	}
	for _, keep := range []string{"From: Alice <alice@sender.test>\n", "Subject: headers\n", "\n\nbody stays\n"} {
		if !strings.Contains(body, keep) {
			t.Errorf("arrived message lost %q:\n%s", keep, body)
		}
	}
}

func TestUnknownRecipientRelaysPostfixReply(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	out, ok := swaks(t, s.addr, "--from", "alice@sender.test", "--to", "nobody@example.net")
	if ok || !strings.Contains(out, "550 5.1.1") || !strings.Contains(out, "User unknown in virtual mailbox table") {
		t.Fatalf("want Postfix's own 550 5.1.1 relayed, got:\n%s", out)
	}
}

func TestPipelinedTransactions(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	r := dialRaw(t, s.addr)
	r.send("EHLO client.test\r\n")
	if ehlo := r.expect("250"); !strings.Contains(ehlo, "250") {
		t.Fatal(ehlo)
	}
	// RFC 2920: MAIL, RCPT and DATA in one write; the message and the next
	// transaction's commands in the next.
	r.send("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<nobody@example.net>\r\nDATA\r\n")
	r.expect("250")
	r.expect("250")
	r.expect("550")
	r.expect("354")
	r.send(string(cleanMessage("pipe1")) + ".\r\nMAIL FROM:<alice@sender.test>\r\nRCPT TO:<alice@example.net>\r\nDATA\r\n")
	r.expect("250")
	r.expect("250")
	r.expect("250")
	r.expect("354")
	r.send(string(cleanMessage("pipe2")) + ".\r\nRSET\r\nMAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n")
	r.expect("250")
	r.expect("250")
	r.expect("250")
	r.expect("250")
	r.expect("354")
	r.send(string(cleanMessage("pipe3")) + ".\r\nQUIT\r\n")
	r.expect("250")
	r.expect("221")
	bob := s.pf.WaitDelivered("inbox", 2, 20*time.Second)
	alice := s.pf.WaitDelivered("alice", 1, 20*time.Second)
	if len(bob) != 2 || len(alice) != 1 {
		t.Fatalf("delivered bob=%d alice=%d, want 2 and 1", len(bob), len(alice))
	}
	all := string(bob[0].Data) + string(bob[1].Data)
	for _, id := range []string{"pipe1", "pipe3"} {
		if !strings.Contains(all, "<"+id+"@sender.test>") {
			t.Errorf("bob's mailbox lacks %s", id)
		}
	}
	if !bytes.Contains(alice[0].Data, []byte("<pipe2@sender.test>")) {
		t.Errorf("alice's mailbox lacks pipe2")
	}
}

func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mailgate.test"},
		DNSNames:     []string{"mailgate.test", "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

func TestStartTLS(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	s := startStack(t, fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key), "policies/default.yaml")
	out, ok := swaks(t, s.addr, "--tls", "--from", "alice@sender.test", "--to", "bob@example.net",
		"--header", "Subject: over TLS", "--body", "encrypted hop")
	if !ok || !strings.Contains(out, "TLS started") {
		t.Fatalf("swaks --tls failed:\n%s", out)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	if len(got) != 1 || !bytes.Contains(got[0].Data, []byte("encrypted hop")) {
		t.Fatalf("message over STARTTLS did not arrive (%d delivered)", len(got))
	}
}

func TestEightBitAndSMTPUTF8Intact(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	eight := crlf(
		"From: Jörg <alice@sender.test>",
		"To: bob@example.net",
		"Subject: Grüße aus Köln",
		"Date: Sun, 22 Nov 2026 10:00:00 +0000",
		"Message-ID: <8bit1@sender.test>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: 8bit",
		"",
		"Grüße, naïve café, 日本語のテキスト.",
	)
	r := dialRaw(t, s.addr)
	r.send("EHLO client.test\r\n")
	ehlo := r.expect("250")
	_ = ehlo
	r.send("MAIL FROM:<alice@sender.test> BODY=8BITMIME\r\n")
	r.expect("250")
	r.send("RCPT TO:<bob@example.net>\r\n")
	r.expect("250")
	r.send("DATA\r\n")
	r.expect("354")
	r.send(string(eight) + ".\r\n")
	r.expect("250")
	utf8msg := crlf(
		"From: jörg@sender.test",
		"To: bob@example.net",
		"Subject: SMTPUTF8",
		"Date: Sun, 22 Nov 2026 10:00:00 +0000",
		"Message-ID: <utf8-1@sender.test>",
		"",
		"An internationalised sender: jörg@sender.test",
	)
	r.send("MAIL FROM:<jörg@sender.test> SMTPUTF8 BODY=8BITMIME\r\n")
	r.expect("250")
	r.send("RCPT TO:<bob@example.net>\r\n")
	r.expect("250")
	r.send("DATA\r\n")
	r.expect("354")
	r.send(string(utf8msg) + ".\r\nQUIT\r\n")
	r.expect("250")
	r.expect("221")
	got := s.pf.WaitDelivered("inbox", 2, 20*time.Second)
	if len(got) != 2 {
		t.Fatalf("delivered %d, want 2", len(got))
	}
	var found8, foundU bool
	for _, d := range got {
		body := stripPostfixTrace(d.Data)
		if bytes.Equal(body, lf(eight)) {
			found8 = true
		}
		if bytes.Equal(body, lf(utf8msg)) && bytes.Contains(d.Data, []byte("Return-Path: <jörg@sender.test>")) {
			foundU = true
		}
	}
	if !found8 {
		t.Errorf("8BITMIME message not byte-identical on arrival\n--- sent\n%s", lf(eight))
	}
	if !foundU {
		t.Errorf("SMTPUTF8 message not intact on arrival\n--- sent\n%s", lf(utf8msg))
	}
	if t.Failed() {
		for _, d := range got {
			t.Logf("--- arrived\n%s", d.Data)
		}
	}
}

func TestUpstreamDownTempfails(t *testing.T) {
	closed := e2e.FreeAddr(t) // nothing listens here
	s := startMailgate(t, "smtp://"+closed, nil, "", "policies/default.yaml")
	err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, cleanMessage("down1"))
	if err == nil || !strings.HasPrefix(err.Error(), "4") {
		t.Fatalf("upstream down: want a 4xx, got %v", err)
	}
	s.spoolEmpty(t)
}

func TestClientDropMidDataDeliversNothing(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	r := dialRaw(t, s.addr)
	r.send("EHLO client.test\r\n")
	r.expect("250")
	r.send("MAIL FROM:<alice@sender.test>\r\n")
	r.expect("250")
	r.send("RCPT TO:<bob@example.net>\r\n")
	r.expect("250")
	r.send("DATA\r\n")
	r.expect("354")
	full := cleanMessage("drop1")
	r.send(string(full[:len(full)/2]))
	r.c.Close()
	// A complete message afterwards must be the only one to arrive.
	if err := sendGo(t, s.addr, "alice@sender.test", []string{"bob@example.net"}, cleanMessage("after-drop")); err != nil {
		t.Fatalf("send after drop: %v", err)
	}
	got := s.pf.WaitDelivered("inbox", 1, 20*time.Second)
	time.Sleep(settle)
	got = s.pf.Delivered("inbox")
	if len(got) != 1 || !bytes.Contains(got[0].Data, []byte("<after-drop@sender.test>")) {
		t.Fatalf("want only the complete message delivered, got %d", len(got))
	}
	s.spoolEmpty(t)
}

// TestSMTPSmuggling sends, for each ambiguous end-of-data sequence, a
// message whose body hides a second transaction behind that sequence. The
// upstream must see exactly the transactions mailgate accepted: here none,
// since bare CR, bare LF and NUL are rejected by default.
func TestSMTPSmuggling(t *testing.T) {
	s := startStack(t, "", "policies/default.yaml")
	variants := map[string]string{
		"LF.LF":      "\n.\n",
		"CR.CR":      "\r.\r",
		"LF.CRLF":    "\n.\r\n",
		"CRLF.LF":    "\r\n.\n",
		"CR.CRLF":    "\r.\r\n",
		"CRLF.CR":    "\r\n.\r",
		"NUL.CRLF":   "\r\n\x00.\r\n",
		"CRLF.NUL":   "\r\n.\x00\r\n",
		"LF.NUL.LF":  "\n\x00.\n",
		"bare LF":    "\nsome text\n",
		"CRLF.NULCR": "\r\n.\r\x00\n",
	}
	accepted := 0
	for name, seq := range variants {
		r := dialRaw(t, s.addr)
		r.send("EHLO client.test\r\nMAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n")
		r.expect("250")
		r.expect("250")
		r.expect("250")
		r.expect("354")
		r.send("From: alice@sender.test\r\nSubject: smuggling " + name + "\r\n\r\nouter body" + seq +
			"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nevil\r\n.\r\n")
		reply := r.reply()
		switch {
		case strings.HasPrefix(reply, "250"):
			accepted++
		case strings.HasPrefix(reply, "550 5.5.2"):
		default:
			t.Errorf("%s: end of data answered %q, want 550 5.5.2 (or 250)", name, reply)
		}
		// After the real CRLF.CRLF, the session is in sync: the hidden
		// commands were never taken as commands.
		r.send("NOOP\r\n")
		if got := r.reply(); !strings.HasPrefix(got, "250") {
			t.Errorf("%s: session out of sync after DATA: NOOP answered %q", name, got)
		}
		r.send("QUIT\r\n")
	}
	time.Sleep(settle)
	got := s.pf.Delivered("inbox")
	if len(got) != accepted {
		t.Errorf("mailgate accepted %d messages, the upstream delivered %d", accepted, len(got))
	}
	for _, d := range got {
		if bytes.Contains(d.Data, []byte("Return-Path: <evil@attacker.test>")) {
			t.Errorf("a smuggled transaction arrived:\n%s", d.Data)
		}
	}
	if accepted != 0 {
		t.Errorf("bare_newline: reject accepted %d smuggling attempts", accepted)
	}
}

// TestQuickStart runs mailgate as the README's first command does (no
// config file: embedded defaults) and sends the README's swaks example.
func TestQuickStart(t *testing.T) {
	dir := t.TempDir()
	e2e.StartMailgate(t, dir, "127.0.0.1:2525", "serve")
	out, ok := swaks(t, "127.0.0.1:2525", "--from", "alice@example.org", "--to", "bob@example.net",
		"--header", "Subject: hello", "--body", "first message through mailgate")
	if !ok {
		t.Fatalf("swaks:\n%s", out)
	}
	got := e2e.ReadMaildir(filepath.Join(dir, "mailgate-mail"))
	if len(got) != 1 || !bytes.Contains(got[0].Data, []byte("first message through mailgate")) {
		t.Fatalf("want the message in ./mailgate-mail/new, found %d", len(got))
	}
	// A local delivery: the envelope is in the file.
	for _, want := range []string{"Return-Path: <alice@example.org>\n", "Delivered-To: bob@example.net\n", " (mailgate) with ESMTP id "} {
		if !bytes.Contains(got[0].Data, []byte(want)) {
			t.Errorf("delivered file lacks %q:\n%s", want, got[0].Data)
		}
	}
}

// TestQuickStartTwoRecipients: with the embedded Maildir, two recipients
// (one of them only in the envelope, a Bcc) get a file each, each with
// its own Delivered-To.
func TestQuickStartTwoRecipients(t *testing.T) {
	dir := t.TempDir()
	addr := e2e.FreeAddr(t)
	e2e.StartMailgate(t, dir, addr, "serve", "--listen", addr)
	out, ok := swaks(t, addr, "--from", "alice@example.org", "--to", "bob@example.net,carol@example.net",
		"--header", "To: bob@example.net", "--header", "Subject: hello", "--body", "to two")
	if !ok {
		t.Fatalf("swaks:\n%s", out)
	}
	got := e2e.ReadMaildir(filepath.Join(dir, "mailgate-mail"))
	if len(got) != 2 {
		t.Fatalf("%d files for two recipients, want 2", len(got))
	}
	seen := map[string]bool{}
	for _, d := range got {
		if !bytes.HasPrefix(d.Data, []byte("Return-Path: <alice@example.org>\nDelivered-To: ")) || bytes.Contains(d.Data, []byte("\r\n")) {
			t.Errorf("delivered file:\n%s", d.Data)
		}
		for _, r := range []string{"bob@example.net", "carol@example.net"} {
			if bytes.Contains(d.Data, []byte("Delivered-To: "+r+"\n")) {
				seen[r] = true
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("Delivered-To of the files: %v", seen)
	}
	t.Logf("%s:\n%s", filepath.Base(got[0].Path), got[0].Data)
}
