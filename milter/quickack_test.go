package milter

import (
	"net"
	"runtime"
	"sort"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"
)

// naglingDialer dials with Nagle's algorithm on, as Postfix's milter
// client does.
type naglingDialer struct{}

func (naglingDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(false)
	}
	return c, err
}

// An MTA with Nagle on sends each stage's macros and command as two
// segments; without quick ACKs the command waited for mailgate's delayed
// ACK (~40 ms on Linux). The stages before the end of the message are
// negotiated without replies (the client returns as soon as it has
// written), so the time is taken up to the end-of-message reply: a whole
// message must take far less than one delayed ACK. (Up to connect, helo
// and mail only, as this test first did, it passed without quick ACKs
// once those stages needed no reply, while Postfix stalled +43 ms a
// message in the bench.)
func TestMilterNoDelayedAckStall(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_QUICKACK is Linux's")
	}
	_, addr := startMilter(t, testConfig(t, benchPacks, ""))
	cl := gomilter.NewClient("tcp", addr, gomilter.WithDialer(naglingDialer{}))
	var times []time.Duration
	for i := 0; i < 9; i++ {
		mb := gomilter.NewMacroBag()
		mb.Set(gomilter.MacroClientAddr, "192.0.2.7")
		s, err := cl.Session(mb)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if _, err := s.Conn("client.example.com", gomilter.FamilyInet, 40000, "192.0.2.7"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Helo("client.example.com"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mail("a@example.com", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rcpt("b@example.net", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DataStart(); err != nil {
			t.Fatal(err)
		}
		for _, h := range [][2]string{{"From", " a@example.com"}, {"To", " b@example.net"}, {"Subject", " hello"}} {
			if _, err := s.HeaderField(h[0], h[1], nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.HeaderEnd(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.BodyChunk([]byte("hello\r\n")); err != nil {
			t.Fatal(err)
		}
		if _, act, err := s.End(); err != nil || act == nil {
			t.Fatalf("end of message: %v, %v", act, err)
		}
		times = append(times, time.Since(t0))
		s.Close()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	if med := times[len(times)/2]; med > 30*time.Millisecond {
		t.Errorf("a message takes %v (median of %d): delayed ACKs stall the MTA", med, len(times))
	}
}
