package milter

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// bufConn is a milter connection with buffered reads, coalesced writes
// and lazy deadlines, so that a milter packet costs no syscall of its
// own:
//
//   - Reads are buffered: go-milter reads each packet's length, then its
//     body, and the MTA sends several packets at once; one read of the
//     socket takes them all.
//   - Writes are held until the next read of the socket (or until the
//     buffer holds writeBuf bytes, or Close): go-milter writes each reply
//     packet as two writes (length and code, then the data), and the
//     modification actions at the end of a message are several packets;
//     they go out as one write. The milter protocol never waits for the
//     MTA before it has said everything, so flushing before every read
//     that needs the socket can neither deadlock nor delay a reply.
//   - go-milter sets a read and a write deadline around every packet and
//     clears them after it; here they are recorded and put on the socket
//     only before the socket read or write they bound (one runtime timer
//     change per socket read and per flush instead of four per packet).
//     A write error comes back from the next Write, Read or Close.
//
// beforeRead, when set, runs before every read of the socket (quick ACKs,
// quickack_linux.go).
type bufConn struct {
	net.Conn
	beforeRead func()

	// The read side: the session's goroutine reads; Close (from any
	// goroutine) returns the reader to its pool.
	rmu sync.Mutex
	br  *bufio.Reader // nil once closed

	rdl, rdlSet time.Time // requested and applied read deadline

	mu     sync.Mutex // the write side: the session's goroutine, and Close from go-milter's Server
	wb     []byte
	wdl    time.Time // the last non-zero write deadline requested
	wdlSet time.Time // the one on the socket
	werr   error     // first write error, sticky
}

// writeBuf is the most bufConn holds before writing (a body replacement
// is written in go-milter's chunks of up to 64 KiB).
const writeBuf = 64 << 10

// readers recycles the connections' read buffers (a connection per SMTP
// session: one per message in the usual case).
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 8<<10) }}

func newBufConn(c net.Conn, beforeRead func()) *bufConn {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	return &bufConn{Conn: c, br: br, beforeRead: beforeRead}
}

func (c *bufConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.br == nil {
		return 0, net.ErrClosed
	}
	if c.br.Buffered() == 0 {
		if err := c.Flush(); err != nil {
			return 0, err
		}
		if !c.rdl.Equal(c.rdlSet) {
			if err := c.Conn.SetReadDeadline(c.rdl); err != nil {
				return 0, err
			}
			c.rdlSet = c.rdl
		}
		if c.beforeRead != nil {
			c.beforeRead()
		}
	}
	return c.br.Read(p)
}

func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	c.wb = append(c.wb, p...)
	if len(c.wb) >= writeBuf {
		c.flushLocked()
	}
	return len(p), nil
}

// Flush writes what Write holds.
func (c *bufConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	return c.werr
}

func (c *bufConn) flushLocked() {
	if len(c.wb) == 0 || c.werr != nil {
		return
	}
	if !c.wdl.Equal(c.wdlSet) {
		if err := c.Conn.SetWriteDeadline(c.wdl); err != nil {
			c.werr = err
			return
		}
		c.wdlSet = c.wdl
	}
	_, c.werr = c.Conn.Write(c.wb)
	if cap(c.wb) > writeBuf {
		c.wb = nil // a body replacement's chunk: not kept for the connection's life
	} else {
		c.wb = c.wb[:0]
	}
}

// SetReadDeadline records t for the next read of the socket.
func (c *bufConn) SetReadDeadline(t time.Time) error {
	c.rdl = t
	return nil
}

// SetWriteDeadline records t for the next write of the socket; the zero
// time (go-milter clears the deadline after each packet) keeps the last
// one, since what was written is written at the next flush, which that
// deadline bounds.
func (c *bufConn) SetWriteDeadline(t time.Time) error {
	if !t.IsZero() {
		c.mu.Lock()
		c.wdl = t
		c.mu.Unlock()
	}
	return nil
}

func (c *bufConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// Close writes what is held (unless a write is under way in another
// goroutine: go-milter's Server closes sessions from outside) and closes
// the connection.
func (c *bufConn) Close() error {
	var werr error
	if c.mu.TryLock() {
		c.flushLocked()
		werr = c.werr
		c.mu.Unlock()
	}
	err := c.Conn.Close() // ends a Read under way
	c.rmu.Lock()
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	c.rmu.Unlock()
	if err == nil && werr != nil {
		err = werr
	}
	return err
}
