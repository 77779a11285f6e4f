package milter

import (
	"net"
	"syscall"
)

// withQuickAck wraps a milter connection (bufConn); a TCP one turns off
// delayed ACKs before each read of the socket. The MTA writes a macro
// packet and the command after it as two small segments, without waiting
// for a reply in between; with Nagle on in the MTA (Postfix does not set
// TCP_NODELAY on milter connections) the second waits for the ACK of the
// first, which a delayed ACK holds back ~40 ms: per stage, per message.
// Linux clears TCP_QUICKACK again on its own, so it is set before every
// read of the socket (docs/DESIGN.md "Milter mode"). (Nagle is off on
// mailgate's side: Go's default for TCP connections.)
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return newBufConn(c, nil)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return newBufConn(c, nil)
	}
	setAck := func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1) }
	return newBufConn(tc, func() { raw.Control(setAck) })
}
