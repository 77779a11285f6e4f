package main

import (
	"net"
	"syscall"
)

// withQuickAck is mailgate's (milter/quickack_linux.go): TCP_QUICKACK
// before every read of the socket, so Postfix's second small segment does
// not wait ~40 ms for a delayed ACK of its first.
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
