//go:build !linux

package milter

import "net"

// withQuickAck wraps a milter connection (bufConn); quick ACKs are
// Linux's.
func withQuickAck(c net.Conn) net.Conn { return newBufConn(c, nil) }
