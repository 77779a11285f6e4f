package proxy

import (
	"strings"
	"testing"
	"time"
)

// TestUpstreamFaults fails the upstream at every stage and checks DESIGN
// invariant 1: the client never gets 2xx for a message the upstream did not
// accept, the replies come within a bound, and the log names the fault.
func TestUpstreamFaults(t *testing.T) {
	tests := []struct {
		fault    string
		mail     string // reply to MAIL
		rcpt     string // reply to RCPT ("" when MAIL failed)
		final    string // reply to the final dot ("" when no DATA)
		logWants string
	}{
		{fault: "connect", mail: "451 4.4.1", logWants: "upstream unavailable"},
		{fault: "greet", mail: "451 4.4.1", logWants: "greeting"},
		{fault: "ehlo", mail: "451 4.4.1", logWants: "upstream unavailable"},
		{fault: "xforward", mail: "451 4.4.2", logWants: "upstream failed"},
		{fault: "mail", mail: "451 4.4.2", logWants: "upstream failed"},
		{fault: "rcpt", mail: "250", rcpt: "451 4.4.2", logWants: "upstream failed"},
		{fault: "data", mail: "250", rcpt: "250", final: "451 4.4.2", logWants: "upstream failed"},
		{fault: "body", mail: "250", rcpt: "250", final: "451 4.4.2", logWants: "upstream failed"},
		{fault: "dot", mail: "250", rcpt: "250", final: "451 4.4.2", logWants: "reading reply"},
		{fault: "stall", mail: "250", rcpt: "250", final: "451 4.4.2", logWants: "i/o timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.fault, func(t *testing.T) {
			up := newFakeUpstream(t)
			up.fault = tc.fault
			cfg := testConfig(t, up.url())
			cfg.Timeouts.Upstream = 500 * time.Millisecond
			addr, _, lg := startServer(t, cfg, nil)
			c := dialClient(t, addr)
			c.cmd("EHLO client.test", "250")
			t0 := time.Now()
			c.cmd("MAIL FROM:<a@example.org>", tc.mail)
			if tc.rcpt != "" {
				c.cmd("RCPT TO:<b@example.net>", tc.rcpt)
			}
			if tc.final != "" {
				c.cmd("DATA", "354")
				c.send(stuff(cleanMsg + strings.Repeat("more body\r\n", 2000)))
				if rp := c.reply(); !strings.HasPrefix(rp, tc.final) {
					t.Fatalf("final reply %q, want %q", rp, tc.final)
				}
			}
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("replies took %v", d)
			}
			c.cmd("NOOP", "250") // the session goes on
			waitFor(t, "log naming the fault", func() bool { return strings.Contains(lg.String(), tc.logWants) })
		})
	}
}
