// Package clamd is a client for ClamAV's clamd: INSTREAM (scan a stream of
// bytes) and PING, over TCP or a unix socket, one connection per request
// (docs/DESIGN.md "Wave 2 contract", clamd). It knows nothing of SMTP or
// policies: the front-end streams the message from its spool and turns the
// Result into the rules' Virus facts.
//
// The protocol (clamd(8)): "zINSTREAM\0", then chunks of a 4-byte
// big-endian length followed by that many bytes, then a zero-length chunk;
// clamd answers one NUL-terminated line such as "stream: OK",
// "stream: Eicar-Test-Signature FOUND" or "... ERROR", and closes. A stream
// longer than clamd's StreamMaxLength is answered with
// "INSTREAM size limit exceeded. ERROR" and the connection closed, possibly
// while we are still writing: the reply is read even after a write error.
package clamd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Defaults of Client (docs/DESIGN.md "Wave 2 contract": clamd.timeout,
// clamd.max_size = clamd's own StreamMaxLength default).
const (
	DefaultTimeout = 60 * time.Second
	DefaultMaxSize = 25 << 20
	// chunkSize is the size of one INSTREAM chunk.
	chunkSize = 64 << 10
	// maxReply bounds what is read of clamd's answer.
	maxReply = 64 << 10
)

// ErrTooBig is returned by Scan, without contacting clamd, for a stream
// larger than Client.MaxSize: clamd would refuse it anyway. The front-end
// records the defect limit-virus-scan-size instead of a verdict.
var ErrTooBig = errors.New("clamd: message larger than clamd.max_size, not scanned")

// Client talks to one clamd. The zero value is not usable: build it with
// New. A Client is safe for concurrent use (each request dials its own
// connection).
type Client struct {
	Network string        // "tcp" or "unix"
	Address string        // host:port or socket path
	Timeout time.Duration // bounds a whole request: dial, send, reply
	MaxSize int64         // streams larger than this are not sent (ErrTooBig)
	dialer  net.Dialer
}

// New returns a client for address: "tcp://host:port", "unix:/path" or
// "unix:///path", or an absolute socket path. timeout <= 0 and
// maxSize <= 0 take the defaults.
func New(address string, timeout time.Duration, maxSize int64) (*Client, error) {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Client{Network: network, Address: addr, Timeout: timeout, MaxSize: maxSize}, nil
}

// ParseAddress splits a clamd address into a network and an address for
// net.Dial.
func ParseAddress(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "tcp://"):
		addr = strings.TrimSuffix(strings.TrimPrefix(a, "tcp://"), "/")
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" || port == "" {
			return "", "", fmt.Errorf("clamd address %q: want tcp://host:port", a)
		}
		return "tcp", addr, nil
	case strings.HasPrefix(a, "unix://"):
		addr = strings.TrimPrefix(a, "unix://")
	case strings.HasPrefix(a, "unix:"):
		addr = strings.TrimPrefix(a, "unix:")
	case strings.HasPrefix(a, "/"):
		addr = a
	default:
		return "", "", fmt.Errorf("clamd address %q: want tcp://host:port or unix:/path/to/clamd.ctl", a)
	}
	if !strings.HasPrefix(addr, "/") {
		return "", "", fmt.Errorf("clamd address %q: the unix socket path must be absolute", a)
	}
	return "unix", addr, nil
}

// Result is clamd's verdict on one stream.
type Result struct {
	Found bool
	Names []string // signature names, when Found
}

// Scan sends r (size bytes; size < 0 when unknown) to clamd with INSTREAM
// and returns its verdict. Any failure (dial, timeout, a write error
// without a reply, an ERROR reply, a reply it cannot read) is an error:
// the caller must not take it for "clean". A stream found to be larger
// than MaxSize, before or while sending, is ErrTooBig.
func (c *Client) Scan(ctx context.Context, r io.Reader, size int64) (Result, error) {
	if size > c.MaxSize {
		return Result{}, ErrTooBig
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tooBig := false
	werr := c.send(conn, r, &tooBig)
	if tooBig {
		return Result{}, ErrTooBig
	}
	reply, rerr := readReply(conn)
	if len(reply) == 0 {
		// Nothing to parse: say why, the timeout first.
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("clamd %s: no answer within %s", c.Address, c.Timeout)
		}
		if werr != nil {
			return Result{}, fmt.Errorf("clamd %s: sending: %w", c.Address, werr)
		}
		if rerr != nil {
			return Result{}, fmt.Errorf("clamd %s: reading the reply: %w", c.Address, rerr)
		}
		return Result{}, fmt.Errorf("clamd %s: closed without a reply", c.Address)
	}
	res, err := ParseReply(reply)
	if err != nil {
		return Result{}, fmt.Errorf("clamd %s: %w", c.Address, err)
	}
	if werr != nil {
		// A verdict on part of the stream is not a verdict on the message.
		return Result{}, fmt.Errorf("clamd %s: answered %q before the whole message was sent: %w", c.Address, strings.TrimRight(string(reply), "\x00\n"), werr)
	}
	return res, nil
}

// send writes the INSTREAM command, the chunks and the terminating zero
// chunk. It stops (tooBig) past MaxSize, whatever size said.
func (c *Client) send(conn net.Conn, r io.Reader, tooBig *bool) error {
	buf := make([]byte, 4+chunkSize)
	if _, err := conn.Write([]byte("zINSTREAM\x00")); err != nil {
		return err
	}
	var sent int64
	for {
		n, rerr := io.ReadFull(r, buf[4:])
		if n > 0 {
			sent += int64(n)
			if sent > c.MaxSize {
				*tooBig = true
				return ErrTooBig
			}
			binary.BigEndian.PutUint32(buf[:4], uint32(n))
			if _, err := conn.Write(buf[:4+n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("reading the message: %w", rerr)
		}
	}
	_, err := conn.Write([]byte{0, 0, 0, 0})
	return err
}

// Ping sends zPING and expects PONG.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write([]byte("zPING\x00")); err != nil {
		return fmt.Errorf("clamd %s: %w", c.Address, err)
	}
	reply, err := readReply(conn)
	if got := strings.TrimRight(string(reply), "\x00\n"); got != "PONG" {
		if err != nil && len(reply) == 0 {
			return fmt.Errorf("clamd %s: PING: %w", c.Address, err)
		}
		return fmt.Errorf("clamd %s: PING answered %q", c.Address, got)
	}
	return nil
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	conn, err := c.dialer.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return nil, fmt.Errorf("clamd %s: %w", c.Address, err)
	}
	return conn, nil
}

// readReply reads clamd's answer up to its terminating NUL, or up to EOF
// (clamd closes after one command), bounded by maxReply.
func readReply(conn net.Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 512)
	for len(out) < maxReply {
		n, err := conn.Read(buf)
		out = append(out, buf[:n]...)
		if i := strings.IndexByte(string(out), 0); i >= 0 {
			return out[:i+1], nil
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// ParseReply reads clamd's answer to INSTREAM: one or more lines (NUL or
// newline terminated; clamd with AllMatchScan may list several matches),
// each "stream: OK", "stream: NAME FOUND" or "TEXT ERROR", optionally after
// an IDSESSION "N: " prefix. Any ERROR line, any line it does not know, or
// no line at all is an error: only an explicit OK is clean.
func ParseReply(b []byte) (Result, error) {
	var res Result
	ok := false
	lines := strings.FieldsFunc(string(b), func(r rune) bool { return r == 0 || r == '\n' })
	for _, l := range lines {
		l = strings.TrimSpace(strings.TrimSuffix(l, "\r"))
		if l == "" {
			continue
		}
		if strings.HasSuffix(l, " ERROR") || l == "ERROR" {
			return Result{}, fmt.Errorf("clamd error: %s", printable(strings.TrimSpace(strings.TrimSuffix(l, "ERROR"))))
		}
		body := stripPrefix(l)
		switch {
		case body == "OK":
			ok = true
		case strings.HasSuffix(body, " FOUND"):
			name := strings.TrimSpace(printable(strings.TrimSuffix(body, " FOUND")))
			if name == "" {
				return Result{}, fmt.Errorf("clamd: FOUND without a signature name in %q", printable(l))
			}
			res.Found = true
			res.Names = append(res.Names, name)
		default:
			return Result{}, fmt.Errorf("clamd: unexpected reply %q", printable(l))
		}
	}
	if !res.Found && !ok {
		return Result{}, errors.New("clamd: empty reply")
	}
	return res, nil
}

// stripPrefix removes an IDSESSION request number ("12: ") and the
// "stream: " of an INSTREAM answer.
func stripPrefix(l string) string {
	if i := strings.Index(l, ": "); i > 0 && strings.Trim(l[:i], "0123456789") == "" {
		l = l[i+2:]
	}
	return strings.TrimPrefix(l, "stream: ")
}

// printable bounds and cleans text from clamd before it reaches logs,
// headers or SMTP replies.
func printable(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
