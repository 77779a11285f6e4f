package proxy

import (
	"strconv"
	"strings"
	"testing"
)

func bdat(chunk string, last bool) string {
	cmd := "BDAT " + strconv.Itoa(len(chunk))
	if last {
		cmd += " LAST"
	}
	return cmd + "\r\n" + chunk
}

func TestBDAT(t *testing.T) {
	up := newFakeUpstream(t)
	cfg := testConfig(t, up.url())
	cfg.Limits.MessageSize = 5000
	addr, _, _ := startServer(t, cfg, nil)
	c := dialClient(t, addr)
	if ehlo := c.cmd("EHLO client.test", "250"); !strings.Contains(ehlo, "CHUNKING") {
		t.Fatalf("CHUNKING not offered: %q", ehlo)
	}
	// Outside a transaction: the chunk is read and refused, in sync.
	c.send(bdat("junk\r\nQUIT\r\n", true))
	c.expect("503")
	// Two chunks, the second holding what looks like an end of data and
	// a command: content, sent upstream dot-stuffed.
	msg := "Subject: chunks\r\n\r\nfirst\r\n" + ".\r\nMAIL FROM:<smuggled@evil.test>\r\n" + "end\r\n"
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.send(bdat(msg[:20], false) + bdat(msg[20:], true))
	c.expect("250 2.0.0 20 octets")
	c.expect("250 2.0.0 Ok: queued as FAKE")
	c.cmd("DATA", "503") // no transaction
	// Bare LF: refused after LAST.
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.send(bdat("Subject: x\r\n\r\nbare\nLF\r\n", true))
	c.expect("550 5.5.2")
	// Too big: refused after LAST, still in sync.
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.send(bdat(strings.Repeat("0123456789\r\n", 300), false))
	c.expect("250")
	c.send(bdat(strings.Repeat("0123456789\r\n", 300), true))
	c.expect("552 5.3.4")
	// DATA after BDAT is refused.
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<b@example.net>", "250")
	c.send(bdat("Subject: y\r\n", false))
	c.expect("250")
	c.cmd("DATA", "503")
	c.cmd("RSET", "250")
	c.cmd("BDAT x", "421")
	txs := up.transactions()
	if len(txs) != 1 || string(txs[0].Data) != msg {
		t.Fatalf("upstream transactions %+v", txs)
	}
	for _, l := range up.commands() {
		if strings.HasPrefix(l, "MAIL FROM:<smuggled") {
			t.Fatal("smuggled command reached the upstream")
		}
	}
}

// TestChunkScanner: BDAT content goes through the DATA scanner's line
// checks, without dot-stuffing or an end-of-data line.
func TestChunkScanner(t *testing.T) {
	tests := []struct {
		chunks    []string
		normalize bool
		want      string
		err       error
	}{
		{[]string{"a\r\nb\r\n"}, false, "a\r\nb\r\n", nil},
		{[]string{"a\r", "\nb\r\n"}, false, "a\r\nb\r\n", nil},
		{[]string{"a\nb"}, false, "a\nb", errBareLF},
		{[]string{"a\rb"}, false, "a\rb", errBareCR},
		{[]string{"a\r"}, false, "a\r", errBareCR},
		{[]string{"a\nb\r", "c"}, true, "a\r\nb\r\nc", nil},
		{[]string{"a\x00"}, true, "a\x00", errNUL},
		{[]string{".leading dot\r\n.\r\n", "after"}, false, ".leading dot\r\n.\r\nafter", nil},
		{[]string{"..two\r\n"}, false, "..two\r\n", nil},
	}
	for _, tc := range tests {
		c := newChunkScanner(tc.normalize)
		var out []byte
		for _, ch := range tc.chunks {
			var n int
			out, n = c.scan(out, []byte(ch))
			if n != len(ch) {
				t.Fatalf("%q: consumed %d of %d bytes", tc.chunks, n, len(ch))
			}
		}
		out = c.finish(out)
		if string(out) != tc.want || c.err() != tc.err {
			t.Errorf("%q: got %q %v, want %q %v", tc.chunks, out, c.err(), tc.want, tc.err)
		}
	}
}
