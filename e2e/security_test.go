package e2e_test

// Security checks (issue 7): TLS 1.2+ with sane ciphers, AUTH never offered
// before STARTTLS, no log injection, quarantine and spool files 0600 and
// named by hash, spool files gone after every outcome.

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tlsGate starts mailgate with a STARTTLS certificate.
func tlsGate(t *testing.T, up *fakeUpstream, extra string) *gate {
	t.Helper()
	cert, key := writeCert(t, t.TempDir())
	return startGate(t, up, gateOpts{extra: fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key) + extra})
}

// startTLS says EHLO and STARTTLS on a new session and returns the client
// with the EHLO reply; the caller does the handshake.
func startTLS(t *testing.T, g *gate) (*client, smtpReply) {
	t.Helper()
	c := dialClient(t, g.addr)
	if r := c.read(); r.Code != 220 {
		t.Fatalf("banner: %v", r)
	}
	ehlo := c.cmd("EHLO client.test")
	if !hasKeyword(ehlo, "STARTTLS") {
		t.Fatalf("STARTTLS not offered: %v", ehlo)
	}
	if r := c.cmd("STARTTLS"); r.Code != 220 {
		t.Fatalf("STARTTLS: %v", r)
	}
	return c, ehlo
}

// hasKeyword reports whether an EHLO reply lists keyword.
func hasKeyword(r smtpReply, keyword string) bool {
	for _, l := range r.Lines[min(1, len(r.Lines)):] {
		if len(l) > 4 && strings.EqualFold(strings.Fields(l[4:])[0], keyword) {
			return true
		}
	}
	return false
}

func TestSecurityTLSVersionsAndCiphers(t *testing.T) {
	up := startUpstream(t, upstreamScript{})
	g := tlsGate(t, up, "")
	cases := []struct {
		name    string
		cfg     *tls.Config
		succeed bool
	}{
		{"TLS1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false},
		{"TLS1.1", &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11}, false},
		{"TLS1.2", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}, true},
		{"TLS1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
		{"TLS1.2-RC4-only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA}}, false},
		{"TLS1.2-3DES-only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}}, false},
		{"TLS1.2-static-RSA-only", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startTLS(t, g)
			cfg := tc.cfg.Clone()
			cfg.InsecureSkipVerify = true // a self-signed test certificate
			cfg.ServerName = "mailgate.test"
			conn := tls.Client(c.c, cfg)
			conn.SetDeadline(time.Now().Add(replyBound))
			err := conn.Handshake()
			if !tc.succeed {
				if err == nil {
					st := conn.ConnectionState()
					t.Fatalf("handshake succeeded with %s %s; want it refused", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				t.Logf("refused as it should be: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			st := conn.ConnectionState()
			name := tls.CipherSuiteName(st.CipherSuite)
			t.Logf("negotiated %s %s", tls.VersionName(st.Version), name)
			// A default client must get forward secrecy and an AEAD cipher.
			if st.Version < tls.VersionTLS13 && (!strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20"))) {
				t.Errorf("negotiated %s: want ECDHE with GCM or ChaCha20-Poly1305", name)
			}
			tcl := &client{c: conn, br: bufio.NewReader(conn)}
			if r := tcl.cmd("EHLO client.test"); r.Code != 250 || hasKeyword(r, "STARTTLS") {
				t.Errorf("EHLO over TLS: %v (STARTTLS must not be offered again)", r)
			}
			tcl.cmd("QUIT")
		})
	}
	// Which CBC suites a TLS 1.2 client can still get is reported, not
	// asserted: they are in Go's defaults, and SMTP falls back to clear
	// text when a handshake fails.
	c, _ := startTLS(t, g)
	conn := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}})
	conn.SetDeadline(time.Now().Add(replyBound))
	if err := conn.Handshake(); err == nil {
		t.Logf("note: a CBC-only TLS 1.2 client gets %s", tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
	} else {
		t.Logf("note: CBC-only TLS 1.2 clients are refused: %v", err)
	}
}

func TestSecurityAuthOnlyAfterSTARTTLS(t *testing.T) {
	up := startUpstream(t, upstreamScript{ext: []string{"AUTH PLAIN LOGIN"}})
	g := tlsGate(t, up, "auth: relay\n")
	c := dialClient(t, g.addr)
	c.read()
	ehlo := c.cmd("EHLO client.test")
	if hasKeyword(ehlo, "AUTH") {
		t.Errorf("AUTH offered before STARTTLS: %v", ehlo)
	}
	// AUTH in clear text is refused, never relayed.
	if r := c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="); r.class() != 5 {
		t.Errorf("AUTH before STARTTLS: got %v, want 5xx (530)", r)
	}
	for _, cmd := range up.Commands() {
		if strings.HasPrefix(strings.ToUpper(cmd), "AUTH") {
			t.Errorf("clear-text AUTH was relayed upstream: %q", cmd)
		}
	}
	c2, _ := startTLS(t, g)
	conn := tls.Client(c2.c, &tls.Config{InsecureSkipVerify: true})
	conn.SetDeadline(time.Now().Add(replyBound))
	if err := conn.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	// After STARTTLS, auth: relay offers AUTH and relays it upstream.
	tcl := &client{c: conn, br: bufio.NewReader(conn)}
	if r := tcl.cmd("EHLO client.test"); !hasKeyword(r, "AUTH") {
		t.Errorf("auth: relay, after STARTTLS: AUTH not offered: %v", r)
	}
	if r := tcl.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA=="); r.Code != 235 {
		t.Errorf("AUTH over TLS: got %v, want the upstream's 235 relayed", r)
	}
	relayed := false
	for _, cmd := range up.Commands() {
		relayed = relayed || strings.HasPrefix(strings.ToUpper(cmd), "AUTH")
	}
	if !relayed {
		t.Errorf("AUTH over TLS was not relayed upstream (upstream saw %q)", up.Commands())
	}
	// The credentials never reach the log.
	time.Sleep(200 * time.Millisecond)
	if strings.Contains(g.proc.Output(), "AGFsaWNlAHNlY3JldA") {
		t.Errorf("the AUTH credentials were logged")
	}
}

// controlBytes matches what must never reach a log raw: C0 controls other
// than LF and TAB, DEL, and CR anywhere.
var controlBytes = regexp.MustCompile("[\x00-\x08\x0b-\x1f\x7f]")

func TestSecurityLogInjection(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			up := startUpstream(t, upstreamScript{})
			// The second and third sessions speak as a trusted forwarder.
			g := startGate(t, up, gateOpts{logFormat: format, extra: "trusted_forwarders: [127.0.0.1/32]\n"})
			// Raw control bytes in HELO and in the MAIL FROM local part.
			c := dialClient(t, g.addr)
			c.read()
			c.cmd("EHLO evil\x1b[31m.host\x07")
			c.cmd("MAIL FROM:<\"evilfrom\x1b]0;pwn\x07\x7f\"@sender.test>")
			c.cmd("RCPT TO:<bob@example.net>")
			if r := c.cmd("DATA"); r.Code == 354 {
				c.send(dotStuff(cleanMessage("inj1")))
				c.read()
			}
			c.cmd("QUIT")
			// xtext-encoded CR LF (the XFORWARD values of a trusted
			// forwarder, and ENVID), decoded before they are logged.
			c = dialClient(t, g.addr)
			c.read()
			c.cmd("EHLO forwarder.test")
			c.cmd("XFORWARD NAME=evilname+0D+0Ainjected=line ADDR=192.0.2.7 HELO=evilhelo+0D+0A+1B[2J PROTO=ESMTP")
			c.cmd("MAIL FROM:<evilenv@sender.test> ENVID=evilenvid+0D+0Ainjected+00")
			c.cmd("RCPT TO:<bob@example.net>")
			if r := c.cmd("DATA"); r.Code == 354 {
				c.send(dotStuff(cleanMessage("inj2")))
				c.read()
			}
			c.cmd("QUIT")
			// Unicode line breaks (NEL, LS, PS) that some log viewers honour.
			c = dialClient(t, g.addr)
			c.read()
			c.cmd("EHLO forwarder.test")
			c.cmd("XFORWARD HELO=evilnel+C2+85injected+E2+80+A8line+E2+80+A9x ADDR=192.0.2.8")
			c.cmd("MAIL FROM:<evil3@sender.test>")
			c.cmd("RCPT TO:<bob@example.net>")
			if r := c.cmd("DATA"); r.Code == 354 {
				c.send(dotStuff(cleanMessage("inj3")))
				c.read()
			}
			c.cmd("QUIT")
			g.waitLog(t, `evilhelo`, 3*time.Second)
			g.waitLog(t, `evilnel`, 3*time.Second)
			time.Sleep(300 * time.Millisecond)
			out := g.proc.Output()
			if loc := controlBytes.FindStringIndex(out); loc != nil {
				lo := max(0, loc[0]-60)
				t.Errorf("raw control byte %q in the log: %q", out[loc[0]:loc[1]], out[lo:min(len(out), loc[1]+20)])
			}
			// Decoded values go upstream xtext-encoded again, never raw.
			for _, cmd := range up.Commands() {
				if strings.HasPrefix(cmd, "injected") || strings.HasPrefix(cmd, "line") || controlBytes.MatchString(cmd) {
					t.Errorf("upstream received an injected or raw command: %q", cmd)
				}
			}
			for _, r := range []string{"\u0085", "\u2028", "\u2029"} {
				if strings.Contains(out, r) {
					t.Errorf("raw %U in the log", []rune(r)[0])
				}
			}
			for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
				if strings.HasPrefix(line, "mailgate: listening on ") {
					continue // serve's own status line on stdout, not a log record
				}
				if strings.HasPrefix(line, "injected") || strings.HasPrefix(line, "line") {
					t.Errorf("log line %d was injected: %q", i, line)
				}
				switch format {
				case "json":
					var v map[string]any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Errorf("log line %d is not one JSON object: %v: %q", i, err, line)
					}
				case "text":
					if !strings.HasPrefix(line, "time=") {
						t.Errorf("log line %d does not start a record: %q", i, line)
					}
				}
			}
		})
	}
}

var hashName = regexp.MustCompile(`^([0-9a-f]{64})\.(eml|[0-9]+\.json)$`)

func TestSecurityQuarantineFiles(t *testing.T) {
	up := startUpstream(t, upstreamScript{})
	g := startGate(t, up, gateOpts{policy: `rules:
  - name: hold-attachments
    when: 'len(Attachments) > 0'
    action: quarantine
`})
	names := []string{"../../etc/x", "..%2F..%2Fetc%2Fy", "/etc/z"}
	for i, name := range names {
		msg := attachmentMessage(fmt.Sprintf("q%d", i), "application/octet-stream", name, []byte("payload "+name))
		c := open(t, g, stDATA)
		c.send(dotStuff(msg))
		if r := c.read(); r.Code != 250 {
			t.Fatalf("quarantine of %q: got %v, want 250", name, r)
		}
		// Invariant 1: 250 only once the copy is written; it must be there now.
		ents, _ := os.ReadDir(g.quarDir)
		if len(ents) < 2*(i+1) {
			t.Errorf("after 250, quarantine holds %d files, want %d", len(ents), 2*(i+1))
		}
		c.cmd("QUIT")
	}
	checkDelivered(t, up, nil)
	if st, err := os.Stat(g.quarDir); err == nil && st.Mode().Perm()&0o077 != 0 {
		t.Errorf("quarantine dir mode %v: want no group/other access", st.Mode().Perm())
	}
	ents, err := os.ReadDir(g.quarDir)
	if err != nil {
		t.Fatal(err)
	}
	emls := 0
	for _, e := range ents {
		m := hashName.FindStringSubmatch(e.Name())
		if m == nil {
			t.Errorf("quarantine file %q: want <sha256>.eml or <sha256>.<ns>.json", e.Name())
			continue
		}
		p := filepath.Join(g.quarDir, e.Name())
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), st.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if m[2] == "eml" {
			emls++
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m[1] {
				t.Errorf("%s: named %s but its SHA-256 is %x", e.Name(), m[1][:12], sum[:6])
			}
		} else {
			var rec map[string]any
			if err := json.Unmarshal(b, &rec); err != nil || !strings.Contains(string(b), "hold-attachments") {
				t.Errorf("%s: sidecar not JSON naming the rule: %v\n%s", e.Name(), err, b)
			}
		}
	}
	if emls != len(names) {
		t.Errorf("%d quarantined messages, want %d", emls, len(names))
	}
	// Nothing was written along a path taken from a filename.
	for _, p := range []string{filepath.Join(g.quarDir, "../../etc/x"), filepath.Join(g.dir, "etc"), filepath.Join(filepath.Dir(g.dir), "etc")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists: a path came from an attachment name", p)
		}
	}
	filepath.Walk(g.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && (info.Name() == "x" || info.Name() == "y" || info.Name() == "z") {
			t.Errorf("file %s named after an attachment", p)
		}
		return nil
	})
}

// TestSecuritySpoolFiles holds a message mid-DATA, past spool_memory, and
// checks the spool file mailgate holds open: mode 0600, in spool_dir, not
// named after anything in the message; then that it is gone after each
// outcome.
func TestSecuritySpoolFiles(t *testing.T) {
	up := startUpstream(t, upstreamScript{})
	g := startGate(t, up, gateOpts{timeouts: "{command: 10s, data_idle: 10s, data_total: 20s, upstream_connect: 2s, upstream: 2s}"})
	msg := attachmentMessage("spool1", "application/octet-stream", "../../etc/spoolname", []byte(strings.Repeat("A", 64<<10)))
	data := dotStuff(msg)
	c := open(t, g, stDATA)
	c.send(data[:len(data)-200])
	var held []openFile
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(held) == 0; time.Sleep(100 * time.Millisecond) {
		for _, f := range openFiles(g.proc.Cmd.Process.Pid) {
			if strings.Contains(f.target, g.spoolDir) {
				held = append(held, f)
			}
		}
	}
	if len(held) == 0 {
		t.Errorf("no spool file held open in %s for a message past spool_memory (4KiB)", g.spoolDir)
	}
	for _, f := range held {
		st, err := os.Stat(f.fd)
		if err != nil {
			t.Errorf("stat %s: %v", f.fd, err)
			continue
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("spool file %s: mode %v, want 0600", f.target, st.Mode().Perm())
		}
		if filepath.Dir(strings.TrimSuffix(f.target, " (deleted)")) != g.spoolDir || strings.Contains(f.target, "spoolname") {
			t.Errorf("spool file %s: want a generated name directly in %s", f.target, g.spoolDir)
		}
	}
	c.send(data[len(data)-200:])
	if r := c.read(); r.Code != 250 {
		t.Errorf("end of data: %v", r)
	}
	c.cmd("QUIT")
	checkDelivered(t, up, [][]byte{msg})
	g.spoolClean(t)
	// A client crash mid-DATA (the connection reset, not closed politely).
	c = open(t, g, stDATA)
	c.send(data[:len(data)/2])
	time.Sleep(200 * time.Millisecond)
	if tc, ok := c.c.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.c.Close()
	g.spoolClean(t)
	checkDelivered(t, up, [][]byte{msg})
}
