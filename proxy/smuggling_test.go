package proxy

import (
	"strings"
	"testing"
)

// TestSmuggling sends every SMTP smuggling variant (DESIGN invariant 2):
// a fake end of data followed by a second transaction inside the DATA of
// the first, then the real end. The fake upstream ends DATA at LF.LF and
// LF.CRLF like a lenient MTA, so a leaked boundary would show as a
// smuggled transaction. The upstream must see exactly what mailgate
// accepted: nothing (reject mode) or one message with the smuggled lines as
// content (normalize mode).
func TestSmuggling(t *testing.T) {
	variants := map[string]string{
		"bare LF":        "\n",
		"LF.LF":          "\n.\n",
		"CR.CR":          "\r.\r",
		"LF.CRLF":        "\n.\r\n",
		"CRLF.LF":        "\r\n.\n",
		"CR.CRLF":        "\r.\r\n",
		"CRLF.CR":        "\r\n.\r",
		"bare CR":        "\r",
		"NUL.CRLF":       "\r\n\x00.\r\n",
		"CRLF.NUL.CRLF":  "\r\n.\x00\r\n",
		"LF.LF with NUL": "\n\x00.\n",
	}
	for _, mode := range []string{"reject", "normalize"} {
		for name, fake := range variants {
			t.Run(mode+"/"+name, func(t *testing.T) {
				up := newFakeUpstream(t)
				cfg := testConfig(t, up.url())
				cfg.BareNewline = mode
				addr, _, _ := startServer(t, cfg, nil)
				c := dialClient(t, addr)
				c.cmd("EHLO client.test", "250")
				payload := "Subject: first\r\n\r\nhello" + fake +
					"MAIL FROM:<smuggled@evil.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled" + fake +
					"\r\n.\r\n"
				c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" + payload + "NOOP\r\n")
				c.expect("250")
				c.expect("250")
				c.expect("354")
				final := c.reply()
				c.expect("250") // NOOP: still in sync
				c.cmd("QUIT", "221")
				rejected := mode == "reject" || strings.Contains(fake, "\x00")
				txs := up.transactions()
				if rejected {
					if !strings.HasPrefix(final, "550 5.5.2") {
						t.Fatalf("final reply %q, want 550 5.5.2", final)
					}
					if len(txs) != 0 {
						t.Fatalf("upstream got %d transactions, want none: %+v", len(txs), txs)
					}
				} else {
					if !strings.HasPrefix(final, "250") {
						t.Fatalf("final reply %q, want 250", final)
					}
					if len(txs) != 1 || txs[0].From != "a@example.org" || !strings.Contains(string(txs[0].Data), "MAIL FROM:<smuggled@evil.test>") {
						t.Fatalf("upstream transactions %+v", txs)
					}
					if strings.ContainsAny(strings.ReplaceAll(string(txs[0].Data), "\r\n", ""), "\r\n") {
						t.Errorf("upstream data has bare line breaks: %q", txs[0].Data)
					}
				}
				for _, l := range up.commands() {
					if strings.HasPrefix(l, "MAIL FROM:<smuggled") {
						t.Fatalf("smuggled MAIL reached the upstream as a command")
					}
				}
			})
		}
	}
}
