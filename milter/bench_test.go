package milter

import (
	"testing"

	gomilter "github.com/d--j/go-milter"
	"strings"
)

// BenchmarkMilterMessage: one 2 KB message per SMTP session through the
// milter with the bench packs, go-milter's client playing Postfix over
// loopback TCP (connect, helo, mail, rcpt, header fields, body, end).
// ns/op is the whole exchange: mailgate's added latency per message
// without an MTA's own work.
func BenchmarkMilterMessage(b *testing.B) {
	_, addr := startMilter(b, testConfig(b, benchPacks, ""))
	raw := []byte("From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: report\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <b@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 30))
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := sendMsg(b, addr, "alice@example.org", []string{"bob@example.net"}, raw)
		if r.act.Type != gomilter.ActionAccept {
			b.Fatalf("%v", r.act)
		}
	}
}
