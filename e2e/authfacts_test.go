package e2e_test

// serve with the lookups on, through a real DNS server (a private
// unbound): a blocklisted client is refused at connect, a forged sender of
// a p=reject domain at the end of DATA, and relayed mail carries
// mailgate's Authentication-Results field (incoming ones claiming its
// authserv-id removed) and, when rewritten and ours, a new DKIM signature
// that python3-dkim verifies (docs/policy.md "Lookup facts").

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/internal/e2e"
)

func TestServeLookupsThroughUnbound(t *testing.T) {
	signKey, signRec := e2e.DKIMKey(t) // the sender's key (python3-dkim signs)
	ourKey, ourRec := e2e.DKIMKey(t)   // mailgate's dkim_sign key
	u := e2e.StartUnbound(t,
		[]string{"example.org", "bl.example", "127.in-addr.arpa"},
		[]string{
			`example.org. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
			`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
			`s1._domainkey.example.org. 300 IN TXT "` + signRec + `"`,
			`mg1._domainkey.example.org. 300 IN TXT "` + ourRec + `"`,
			`1.0.0.127.in-addr.arpa. 300 IN PTR mail.example.org.`,
			`mail.example.org. 300 IN A 127.0.0.1`,
			`9.0.0.127.bl.example. 300 IN A 127.0.0.2`,
		})
	dir := t.TempDir()
	addr := uniqueAddr(t)
	pack := filepath.Join(e2e.RepoRoot(t), "policies/facts/authentication.yaml")
	writeFiles(t, dir, map[string]string{
		"mailgate.yaml": "listen: [\"" + addr + "\"]\nhostname: mx.example.net\nupstream: maildir:mail\nlog: {format: json}\n" +
			"policies: [\"" + pack + "\", local.yaml]\n" +
			"dns: {servers: [\"" + u.Addr + "\"], timeout: 2s}\ndnsbl: {local: bl.example}\n" +
			"auth_checks: {spf: true, dkim: true, dmarc: true, arc: true, authserv_id: mx.example.net}\n" +
			"dkim_sign: {domain: example.org, selector: mg1, key: " + ourKey + "}\n",
		"local.yaml": "rules:\n  - name: tag-example-org\n    when: 'FromDomain == \"example.org\"'\n    subject_prefix: \"[checked] \"\n",
	})
	p := e2e.StartMailgate(t, dir, addr, "serve", "-c", "mailgate.yaml")

	plain := "Authentication-Results: mx.example.net; dkim=pass header.d=example.org\r\n" +
		"Authentication-Results: relay.example; spf=pass smtp.mailfrom=example.org\r\n" +
		"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n" +
		"Date: Mon, 07 Dec 2026 01:00:00 +0000\r\nMessage-ID: <serve@example.org>\r\n\r\nHello through mailgate.\r\n"
	signed := string(e2e.PyDKIM(t, []byte(strings.SplitN(plain, "\r\n", 3)[2]), "sign", signKey, "s1", "example.org", "rsa-sha256"))

	// A blocklisted client is refused at connect.
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, _ := c.Read(buf)
	c.Close()
	if !strings.HasPrefix(string(buf[:n]), "554 5.7.1") {
		t.Errorf("listed client got %q, want 554 5.7.1", buf[:n])
	}

	send := func(from, msg, want string) {
		t.Helper()
		s := dialRawFrom(t, from, addr)
		s.send("EHLO client.example\r\n")
		s.expect("250")
		s.send("MAIL FROM:<alice@example.org>\r\n")
		s.expect("250")
		s.send("RCPT TO:<bob@example.net>\r\n")
		s.expect("250")
		s.send("DATA\r\n")
		s.expect("354")
		s.send(msg + ".\r\n")
		s.expect(want)
		s.send("QUIT\r\n")
	}
	send("127.0.0.5", plain, "550 5.7.1") // SPF fails, no DKIM: DMARC fails, p=reject
	send("127.0.0.1", plain, "250")       // SPF passes for 127.0.0.1
	send("127.0.0.5", signed, "250")      // SPF fails, aligned DKIM passes: DMARC passes
	// The same through BDAT: DKIM reads the chunks as they arrive too
	// (without them DMARC would fail and the message be refused).
	s := dialRawFrom(t, "127.0.0.5", addr)
	s.send("EHLO client.example\r\n")
	s.expect("250")
	s.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n")
	s.expect("250")
	s.expect("250")
	half := len(signed) / 2
	s.send(fmt.Sprintf("BDAT %d\r\n%s", half, signed[:half]))
	s.expect("250")
	s.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(signed)-half, signed[half:]))
	s.expect("250")
	s.send("QUIT\r\n")
	got := e2e.ReadMaildir(filepath.Join(dir, "mail"))
	if len(got) != 3 {
		t.Fatalf("delivered %d messages, want 3\n%s", len(got), p.Output())
	}
	recs := filepath.Join(dir, "dns.json")
	js, _ := json.Marshal(map[string]string{"mg1._domainkey.example.org": ourRec})
	os.WriteFile(recs, js, 0o644)
	for i, want := range []string{
		"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=alice@example.org; dkim=none; dmarc=pass header.from=example.org; arc=none",
		"Authentication-Results: mx.example.net; spf=fail smtp.mailfrom=alice@example.org; dkim=pass header.d=example.org header.s=s1; dmarc=pass header.from=example.org; arc=none",
		"Authentication-Results: mx.example.net; spf=fail smtp.mailfrom=alice@example.org; dkim=pass header.d=example.org header.s=s1; dmarc=pass header.from=example.org; arc=none",
	} {
		m := stripDelivery(strings.ReplaceAll(string(got[i].Data), "\r\n", "\n"))
		t.Logf("delivered message %d:\n%s", i+1, m)
		if unfolded := strings.ReplaceAll(m, "\n ", " "); !strings.Contains(unfolded, want+"\n") {
			t.Errorf("message %d lacks %q", i+1, want)
		}
		if strings.Count(m, "Authentication-Results: mx.example.net") != 1 {
			t.Errorf("message %d: a forged Authentication-Results claiming our id was kept", i+1)
		}
		if i == 0 && !strings.Contains(m, "Authentication-Results: relay.example;") {
			t.Errorf("another server's Authentication-Results was removed")
		}
		if !strings.HasPrefix(m, "DKIM-Signature: ") || !strings.Contains(m, "Subject: [checked] hello") {
			t.Errorf("message %d: rewritten mail of example.org not re-signed", i+1)
		}
		// python3-dkim verifies mailgate's signature (the first one).
		crlf := strings.ReplaceAll(m, "\n", "\r\n")
		cmd := exec.Command(pythonDKIM(t), filepath.Join(e2e.RepoRoot(t), "facts/testdata/pydkim.py"), "verify", recs)
		cmd.Stdin = strings.NewReader(crlf)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("message %d: python3-dkim does not verify mailgate's signature: %v %s", i+1, err, out)
		}
	}
}

// pythonDKIM is a python3 that imports dkim.
func pythonDKIM(t *testing.T) string {
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import dkim").Run() == nil {
			return py
		}
	}
	e2e.Missing(t, "python3-dkim is not installed")
	return ""
}

// stripDelivery drops the fields the Maildir delivery adds on top
// (Return-Path, Delivered-To, Received): what mailgate relayed follows.
func stripDelivery(m string) string {
	for {
		line, rest, _ := strings.Cut(m, "\n")
		switch {
		case strings.HasPrefix(line, "Return-Path:"), strings.HasPrefix(line, "Delivered-To:"), strings.HasPrefix(line, "Received:"),
			strings.HasPrefix(line, " "), strings.HasPrefix(line, "\t"):
			m = rest
		default:
			return m
		}
	}
}
