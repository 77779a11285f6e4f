package e2e_test

// Hostile clients against a well-behaved upstream: drops, stalls, a client
// sending one byte a second, pipelined garbage, 10,000 recipients, a 2 MB
// header, a 100,000-character line, billion-laughs MIME nesting.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hostileCell is one row of the client-side matrix. run drives the client
// and returns the messages it got 2xx for at end-of-data (invariant 1 then
// checks the upstream accepted exactly those).
type hostileCell struct {
	name  string
	opts  gateOpts
	run   func(t *testing.T, g *gate) [][]byte
	logRE string
}

const (
	logDrop    = `client.gone|EOF|reset|closed`
	logTimeout = `timeout|timed out|deadline`
)

// open runs banner, EHLO and as many of MAIL, RCPT, DATA as upto says,
// failing the test on any unexpected reply.
func open(t *testing.T, g *gate, upto stage) *client {
	t.Helper()
	c := dialClient(t, g.addr)
	steps := []struct {
		st   stage
		line string
		want int
	}{{stConnect, "", 2}, {stEHLO, "EHLO client.test", 2}, {stMAIL, "MAIL FROM:<alice@sender.test>", 2},
		{stRCPT, "RCPT TO:<bob@example.net>", 2}, {stDATA, "DATA", 3}}
	for _, s := range steps {
		if s.st > upto {
			break
		}
		var r smtpReply
		if s.line == "" {
			r = c.read()
		} else {
			r = c.cmd(s.line)
		}
		if r.class() != s.want {
			t.Fatalf("%v: got %v, want %dxx", s.st, r, s.want)
		}
	}
	return c
}

// tx sends one whole transaction on an open session and returns the reply
// to the final dot (or the first refusal).
func tx(c *client, msg []byte) smtpReply {
	for _, line := range []string{"MAIL FROM:<alice@sender.test>", "RCPT TO:<bob@example.net>"} {
		if r := c.cmd(line); r.class() != 2 {
			return r
		}
	}
	if r := c.cmd("DATA"); r.class() != 3 {
		return r
	}
	if err := c.send(dotStuff(msg)); err != nil {
		return smtpReply{Err: err}
	}
	return c.read()
}

// dropAt returns a cell that closes the connection at st.
func dropAt(name string, upto stage, payload func() string) hostileCell {
	return hostileCell{name: name, logRE: logDrop, run: func(t *testing.T, g *gate) [][]byte {
		c := open(t, g, upto)
		if payload != nil {
			c.send(payload())
		}
		c.c.Close()
		time.Sleep(500 * time.Millisecond)
		return nil
	}}
}

// refusedThenUsable sends a message that must be refused with a 5xx at
// end-of-data, then checks the session is still in sync: NOOP answers 250
// and a clean message on the same session arrives.
func refusedThenUsable(t *testing.T, g *gate, msg []byte, wantCode string) [][]byte {
	t.Helper()
	c := open(t, g, stDATA)
	if err := c.send(dotStuff(msg)); err != nil {
		t.Fatalf("sending the message: %v", err)
	}
	r := c.read()
	if r.class() != 5 || !strings.HasPrefix(strings.Join(r.Lines, ""), wantCode) {
		t.Errorf("end of data: got %v, want %s...", r, wantCode)
	}
	if r.class() == 2 {
		return [][]byte{msg}
	}
	if r := c.cmd("NOOP"); r.Code != 250 {
		t.Fatalf("session out of sync after the refusal: NOOP got %v", r)
	}
	clean := cleanMessage("after-refusal")
	if r := tx(c, clean); r.class() != 2 {
		t.Errorf("a clean message after the refusal: got %v", r)
		return nil
	}
	c.cmd("QUIT")
	return [][]byte{clean}
}

// header2MB is a message whose header section is about 2 MB of short lines.
func header2MB() []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@sender.test\r\nTo: bob@example.net\r\nSubject: big header\r\n")
	for i := 0; b.Len() < 2<<20; i++ {
		fmt.Fprintf(&b, "X-Junk-%06d: %s\r\n", i, strings.Repeat("h", 900))
	}
	b.WriteString("\r\nbody\r\n")
	return b.Bytes()
}

// longHeaderLine is a message with a 100,000-character Subject line.
func longHeaderLine() []byte {
	return crlf("From: alice@sender.test", "To: bob@example.net", "Subject: "+strings.Repeat("s", 100000), "", "body")
}

// longLine is a message with one 100,000-character body line.
func longLine() []byte {
	return crlf("From: alice@sender.test", "To: bob@example.net", "Subject: long line", "",
		strings.Repeat("x", 100000), "end")
}

// nestedMIME is a billion-laughs style message: multiparts nested depth
// deep, each level also holding width small text parts.
func nestedMIME(depth, width int) []byte {
	var b bytes.Buffer
	b.WriteString("From: alice@sender.test\r\nTo: bob@example.net\r\nSubject: laughs\r\nMIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n")
	for i := 0; i < depth; i++ {
		for j := 0; j < width; j++ {
			fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\nlol %d.%d\r\n", i, i, j)
		}
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i, i+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\nlol\r\n--b%d--\r\n", depth, depth)
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.Bytes()
}

func hostileCells() []hostileCell {
	half := func() string { m := dotStuff(bigMessage("half", 200<<10)); return m[:len(m)/2] }
	cells := []hostileCell{
		dropAt("drop-after-mail", stMAIL, nil),
		dropAt("drop-after-rcpt", stRCPT, nil),
		dropAt("drop-after-354", stDATA, nil),
		dropAt("drop-mid-body", stDATA, half),
		dropAt("drop-before-dot", stDATA, func() string {
			m := dotStuff(cleanMessage("nodot"))
			return strings.TrimSuffix(m, ".\r\n")
		}),
		{name: "stall-command", logRE: logTimeout, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stEHLO)
			r := c.read() // say nothing: the command timeout (2s) must end it
			if r.Code != 421 || r.Dur < 1500*time.Millisecond {
				t.Errorf("silent client: got %v, want 421 after the 2s command timeout", r)
			}
			return nil
		}},
		{name: "stall-mid-data", logRE: logTimeout, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stDATA)
			c.send(half())
			r := c.read()
			if r.Code != 421 || r.Dur < 1500*time.Millisecond {
				t.Errorf("client silent mid-DATA: got %v, want 421 after the 2s data_idle timeout", r)
			}
			return nil
		}},
		{name: "slow-one-byte-a-second", logRE: logTimeout, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stDATA)
			data := dotStuff(cleanMessage("slow"))
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; i < len(data); i++ {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
					}
					if c.send(data[i:i+1]) != nil {
						return
					}
				}
			}()
			r := c.read()
			// data_total is 3s: cut off with 421 4.4.2 well before the
			// message (hundreds of bytes) could finish.
			if r.Code != 421 || !strings.Contains(strings.Join(r.Lines, ""), "4.4.2") || r.Dur > 6*time.Second {
				t.Errorf("one byte a second: got %v, want 421 4.4.2 at data_total (3s)", r)
			}
			return nil
		}},
		{name: "pipelined-garbage", logRE: `"transaction"`, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stEHLO)
			garbage := []string{"\x00\x01\x02\xff\xfe", "GET / HTTP/1.1", "MAIL FROM:<<<>>>", "RCPT TO:<bob@example.net>",
				"DATA", "MAIL FROM:<a@b> SIZE=-1", strings.Repeat("Z", 5000), "\x1b[2J", "HELO"}
			msg := cleanMessage("after-garbage")
			var b strings.Builder
			for _, gl := range garbage {
				b.WriteString(gl + "\r\n")
			}
			b.WriteString("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n")
			c.send(b.String())
			for i, gl := range garbage {
				if r := c.read(); r.class() != 5 {
					t.Errorf("garbage %d %q: got %v, want 5xx", i, gl[:min(len(gl), 20)], r)
				}
			}
			for _, want := range []int{2, 2, 3} {
				if r := c.read(); r.class() != want {
					t.Fatalf("pipelined transaction after the garbage: got %v, want %dxx", r, want)
				}
			}
			c.send(dotStuff(msg))
			if r := c.read(); r.Code != 250 {
				t.Errorf("message after the garbage: got %v", r)
				return nil
			}
			c.cmd("QUIT")
			return [][]byte{msg}
		}},
		{name: "garbage-flood", logRE: `too many errors`, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stEHLO)
			c.send(strings.Repeat("XYZZY plugh\r\n", 200))
			for i := 0; i < 200; i++ {
				r := c.read()
				if r.Code == 421 {
					if r2 := c.readWithin(2 * time.Second); r2.Code != 0 {
						t.Errorf("after 421 the session must close; got %v", r2)
					}
					return nil
				}
				if r.class() != 5 {
					t.Fatalf("garbage line %d: got %v, want 5xx or a closing 421", i, r)
				}
			}
			t.Errorf("200 bad commands and the session is still open (limits.errors)")
			return nil
		}},
		{name: "10000-recipients", logRE: `too many recipients|452 4\.5\.3`, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stMAIL)
			const n = 10000
			go func() {
				var b strings.Builder
				for i := 0; i < n; i++ {
					fmt.Fprintf(&b, "RCPT TO:<bob%d@example.net>\r\n", i)
				}
				c.send(b.String())
			}()
			ok, full := 0, 0
			for i := 0; i < n; i++ {
				r := c.read()
				switch {
				case r.Code == 250:
					ok++
				case r.Code == 452 && strings.Contains(strings.Join(r.Lines, ""), "4.5.3"):
					full++
				default:
					t.Fatalf("recipient %d: got %v (after %d accepted, %d refused)", i, r, ok, full)
				}
			}
			if ok != 100 || full != n-100 {
				t.Errorf("recipients: %d accepted and %d refused with 452 4.5.3, want 100 and %d", ok, full, n-100)
			}
			if r := c.cmd("DATA"); r.Code != 354 {
				t.Fatalf("DATA after the recipient flood: %v", r)
			}
			msg := cleanMessage("many-rcpts")
			c.send(dotStuff(msg))
			if r := c.read(); r.Code != 250 {
				t.Errorf("end of data after the recipient flood: %v", r)
				return nil
			}
			if acc := g.up.Accepted(); len(acc) == 1 && len(acc[0].Rcpts) != 100 {
				t.Errorf("upstream got %d recipients, want the 100 accepted", len(acc[0].Rcpts))
			}
			c.cmd("QUIT")
			return [][]byte{msg}
		}},
		// Parser limits are defects (DESIGN invariant 4); the default
		// policy fails closed on them.
		{name: "header-2MB", opts: gateOpts{policy: "policies/default.yaml"}, logRE: `fail-closed-limits`, run: func(t *testing.T, g *gate) [][]byte {
			return refusedThenUsable(t, g, header2MB(), "5")
		}},
		{name: "header-line-100000", opts: gateOpts{policy: "policies/default.yaml"}, logRE: `fail-closed-limits`, run: func(t *testing.T, g *gate) [][]byte {
			return refusedThenUsable(t, g, longHeaderLine(), "5")
		}},
		// A long body line costs no memory (streamed) and is no defect: it
		// must arrive unchanged, not cut or folded.
		{name: "body-line-100000", opts: gateOpts{policy: "policies/default.yaml"}, logRE: `"transaction"`, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stDATA)
			msg := longLine()
			c.send(dotStuff(msg))
			if r := c.read(); r.class() != 2 {
				t.Errorf("a 100,000-character body line: got %v", r)
				return nil
			}
			c.cmd("QUIT")
			return [][]byte{msg}
		}},
		{name: "command-line-100000", logRE: `line too long`, run: func(t *testing.T, g *gate) [][]byte {
			c := open(t, g, stEHLO)
			if r := c.cmd("NOOP " + strings.Repeat("n", 100000)); r.Code != 500 {
				t.Errorf("100,000-character command: got %v, want 500", r)
			}
			if r := c.cmd("NOOP"); r.Code != 250 {
				t.Errorf("session out of sync after the long command: NOOP got %v", r)
			}
			return nil
		}},
		{name: "connection-limit", opts: gateOpts{limits: "{connections: 3, spool_memory: 4KiB}"}, logRE: `too many connections|connection limit`, run: func(t *testing.T, g *gate) [][]byte {
			var held []*client
			for i := 0; i < 3; i++ {
				held = append(held, open(t, g, stEHLO))
			}
			c := dialClient(t, g.addr)
			if r := c.read(); r.Code != 421 {
				t.Errorf("connection past limits.connections: got %v, want 421", r)
			}
			// The held sessions still work, and a slot frees when one ends.
			msg := cleanMessage("under-limit")
			if r := tx(held[0], msg); r.Code != 250 {
				t.Errorf("a session under the limit: %v", r)
				return nil
			}
			held[1].cmd("QUIT")
			time.Sleep(300 * time.Millisecond)
			if r := dialClient(t, g.addr).read(); r.Code != 220 {
				t.Errorf("after a session ended, a new one got %v, want 220", r)
			}
			for _, h := range held {
				h.c.Close()
			}
			time.Sleep(300 * time.Millisecond)
			return [][]byte{msg}
		}},
		{name: "message-size", opts: gateOpts{limits: "{message_size: 1MiB, spool_memory: 4KiB}"}, logRE: `too-big|too big|size exceeds|552 5\.3\.4`, run: func(t *testing.T, g *gate) [][]byte {
			return refusedThenUsable(t, g, bigMessage("too-big", 2<<20), "552")
		}},
		{name: "bare-lf", logRE: `bare`, run: func(t *testing.T, g *gate) [][]byte {
			msg := []byte("From: alice@sender.test\r\nSubject: bare\r\n\r\nline\nMAIL FROM:<evil@attacker.test>\r\n")
			return refusedThenUsable(t, g, msg, "550 5.5.2")
		}},
		// Billion laughs: the nesting passes mime_depth, the parser records
		// limit-mime-depth, and the default policy fails closed.
		{name: "mime-nesting-1000", opts: gateOpts{policy: "policies/default.yaml"}, logRE: `fail-closed-limits.*limit-mime-depth`, run: func(t *testing.T, g *gate) [][]byte {
			return refusedThenUsable(t, g, nestedMIME(1000, 1), "5")
		}},
		{name: "mime-parts-5000", opts: gateOpts{policy: "policies/default.yaml"}, logRE: `fail-closed-limits.*limit-mime-parts`, run: func(t *testing.T, g *gate) [][]byte {
			return refusedThenUsable(t, g, nestedMIME(5, 1000), "5")
		}},
	}
	return cells
}

func TestFaultMatrixClient(t *testing.T) {
	runCells(t, hostileCells(), func(c hostileCell) string { return c.name }, func(t *testing.T, cell hostileCell) {
		up := startUpstream(t, upstreamScript{})
		g := startGate(t, up, cell.opts)
		want := cell.run(t, g)
		checkDelivered(t, up, want)
		g.waitLog(t, cell.logRE, 3*time.Second)
		g.spoolClean(t)
		g.alive(t)
	})
}
