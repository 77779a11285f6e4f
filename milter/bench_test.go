package milter

import (
	"strings"
	"syscall"
	"testing"

	gomilter "github.com/d--j/go-milter"
)

// BenchmarkMilterMessage: one 2 KB message per SMTP session through the
// milter with the bench packs, go-milter's client playing Postfix over
// loopback TCP (connect, helo, mail, rcpt, header fields, body, end).
// ns/op is the whole exchange: mailgate's added latency per message
// without an MTA's own work. cpu-µs/op is the test process's user and
// system time per message, mailgate's and the client's together: the
// client's part does not change with mailgate's code, so a change to
// mailgate's CPU cost shows in the difference between two builds.
func BenchmarkMilterMessage(b *testing.B) {
	_, addr := startMilter(b, testConfig(b, benchPacks, ""))
	raw := []byte("From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: report\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <b@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, again and again.\r\n", 30))
	b.SetBytes(int64(len(raw)))
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; i++ {
		r := sendMsg(b, addr, "alice@example.org", []string{"bob@example.net"}, raw)
		if r.act.Type != gomilter.ActionAccept {
			b.Fatalf("%v", r.act)
		}
	}
	b.ReportMetric(float64(processCPU()-cpu0)/1e3/float64(b.N), "cpu-µs/op")
}

// processCPU is the process's user and system time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
