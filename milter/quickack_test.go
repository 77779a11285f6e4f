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
// ACK (~40 ms on Linux) at every stage. Three stages must take far less.
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
		times = append(times, time.Since(t0))
		s.Close()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	if med := times[len(times)/2]; med > 30*time.Millisecond {
		t.Errorf("connect+helo+mail take %v (median of %d): delayed ACKs stall the MTA", med, len(times))
	}
}
