package milter

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// bufConn holds writes until the next read of the socket (or Close) and
// sends them as one.
func TestBufConnCoalesces(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cl, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	raw, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := withQuickAck(raw)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte("a"))
	c.SetWriteDeadline(time.Time{})
	c.Write([]byte("b"))
	buf := make([]byte, 16)
	cl.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := cl.Read(buf); n != 0 || err == nil {
		t.Fatalf("before the milter's read the MTA got %q, %v: want nothing yet", buf[:n], err)
	}
	cl.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := c.Read(buf); n != 1 || err != nil {
		t.Fatalf("milter read %d, %v", n, err)
	}
	cl.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := cl.Read(buf); string(buf[:n]) != "ab" || err != nil {
		t.Fatalf("MTA read %q, %v: want \"ab\" in one read", buf[:n], err)
	}
	c.Write([]byte("c"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(cl); string(b) != "c" || err != nil {
		t.Fatalf("after Close the MTA read %q, %v: want \"c\" then EOF", b, err)
	}
	if _, err := c.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}
