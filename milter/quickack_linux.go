package milter

import (
	"bufio"
	"net"
	"syscall"
)

// quickAck turns off delayed ACKs on c before each read. The MTA writes
// a macro packet and the command after it as two small segments, without
// waiting for a reply in between; with Nagle on in the MTA (Postfix does
// not set TCP_NODELAY on milter connections) the second waits for the
// ACK of the first, which a delayed ACK holds back ~40 ms: per stage, per
// message. Linux clears TCP_QUICKACK again on its own, so it is set
// before every read of the socket (docs/DESIGN.md "Milter mode"). Reads
// are buffered: go-milter reads each packet's length, then its body, and
// the MTA sends several packets at once; one read takes them all.
type quickAck struct {
	*net.TCPConn
	raw syscall.RawConn
	br  *bufio.Reader
}

func (c *quickAck) Read(p []byte) (int, error) {
	if c.br.Buffered() == 0 {
		c.raw.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
		})
	}
	return c.br.Read(p)
}

// withQuickAck wraps a TCP connection; others are returned as they are.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	tc.SetNoDelay(true)
	return &quickAck{TCPConn: tc, raw: raw, br: bufio.NewReaderSize(tc, 8<<10)}
}
