package proxy

import (
	"bufio"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// pipeDialer connects the upstream side to a fake upstream over net.Pipe.
type pipeDialer struct{ u *fakeUpstream }

func (d pipeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	a, b := net.Pipe()
	go d.u.serve(b)
	return a, nil
}

var replyLineRE = regexp.MustCompile(`^[2-5][0-9][0-9][ -]`)

// FuzzSession sends the fuzz input as pipelined commands (and DATA) in one
// session over net.Pipe. Properties: no panic; every line the server sends
// is a well-formed reply; and the number of messages the client was told
// were queued is never more than the upstream received (DESIGN invariant 1).
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n",
		"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\nx\n.\nMAIL FROM:<c@x.org>\r\n",
		"RSET\r\nNOOP\r\nVRFY x\r\nXFORWARD ADDR=1.2.3.4\r\nMAIL FROM:<> SIZE=1\r\n",
		"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nDATA\r\n\x00.\r\n.\r\nDATA\r\n",
		"HELO x\r\nSTARTTLS\r\nAUTH PLAIN\r\nEXPN x\r\nHELP\r\n",
		"MAIL FROM:<a@x.org>\r\nRCPT TO:<b@y.net>\r\nBDAT 5\r\nab\r\nBDAT 3 LAST\r\nc\r\n",
		"MAIL FROM:<a@x.org>\r\nRCPT TO:<no@y.net>\r\nBDAT 2 LAST\r\n\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		up := &fakeUpstream{t: t, rejectRcpt: map[string]string{"no@y.net": "550 5.1.1 unknown"}}
		cfg := testConfig(t, "smtp://upstream.test:25")
		cfg.Timeouts.Command = 2 * time.Second
		cfg.Timeouts.DataIdle = 2 * time.Second
		cfg.Limits.MessageSize = 100000
		srv, err := NewServer(cfg, Options{Dialer: pipeDialer{up}})
		if err != nil {
			t.Fatal(err)
		}
		cc, sc := net.Pipe()
		srv.handle(sc)
		cc.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			cc.Write([]byte("EHLO fuzz.test\r\n" + in + "\r\n.\r\nQUIT\r\n"))
		}()
		br := bufio.NewReader(cc)
		queued := 0
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				break
			}
			if !replyLineRE.MatchString(l) || !strings.HasSuffix(l, "\r\n") {
				t.Fatalf("malformed reply line %q", l)
			}
			if strings.HasPrefix(l, "250 2.0.0 Ok: queued as FAKE") {
				queued++
			}
			if strings.HasPrefix(l, "221 ") || strings.HasPrefix(l, "421 ") {
				break
			}
		}
		cc.Close()
		srv.Close()
		if srv.Panics() != 0 {
			t.Fatal("session panicked")
		}
		// Invariant 1: a 250 for a message the upstream did not get is a
		// lost message. (The reverse, an upstream that stored a message
		// whose reply timed out, is a duplicate the client retries.)
		if got := len(up.transactions()); got < queued {
			t.Fatalf("client told %d messages queued, upstream got %d", queued, got)
		}
	})
}
