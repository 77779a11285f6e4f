package mimeparse

import (
	"bytes"
	"io"
)

// bufSize is the read buffer. Boundary lines and header lines longer than
// the buffer cannot be recognised as such (limit-line-length).
const bufSize = 64 << 10

// input is a read buffer over the raw message that knows the raw offset of
// every byte. Bytes are consumed with advance; avail returns the unread
// buffered bytes (valid until the next fill).
type input struct {
	rd   io.Reader
	buf  []byte
	r, w int
	off  int64 // raw offset of buf[r]
	eof  bool  // rd will give no more bytes
	err  error // first read error other than io.EOF
	// taps are alternative readings that get every consumed byte
	// (readings.go); empty for an unambiguous message.
	taps []*alt
}

func (in *input) avail() []byte { return in.buf[in.r:in.w] }

func (in *input) advance(n int) {
	if len(in.taps) > 0 {
		for _, t := range in.taps {
			t.feed(in.buf[in.r : in.r+n])
		}
	}
	in.r += n
	in.off += int64(n)
}

// fill reads more bytes into the buffer, moving the unread ones to its
// front. It reports whether bytes were added; false means end of input or a
// full buffer.
func (in *input) fill() bool {
	if in.eof {
		return false
	}
	if in.r > 0 {
		copy(in.buf, in.buf[in.r:in.w])
		in.w -= in.r
		in.r = 0
	}
	if in.w == len(in.buf) {
		return false
	}
	for range 100 {
		n, err := in.rd.Read(in.buf[in.w:])
		in.w += n
		if err != nil {
			in.eof = true
			if err != io.EOF {
				in.err = err
			}
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	in.eof = true
	in.err = io.ErrNoProgress
	return false
}

// line returns the next line including its "\n" (or what is left at the end
// of input) without consuming it. full is false when the line does not fit
// in the buffer: line is then the buffered start of it. An empty line at end
// of input means nothing is left.
func (in *input) line() (line []byte, full bool) {
	from := 0 // bytes already known to hold no "\n" (small reads stay linear)
	for {
		b := in.avail()
		if i := bytes.IndexByte(b[from:], '\n'); i >= 0 {
			return b[:from+i+1], true
		}
		from = len(b)
		if !in.fill() {
			b = in.avail()
			return b, in.eof
		}
	}
}

// skipLine consumes the rest of an over-long line through its "\n".
func (in *input) skipLine() {
	for {
		b := in.avail()
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			in.advance(i + 1)
			return
		}
		in.advance(len(b))
		if !in.fill() {
			return
		}
	}
}

// matchDelimiter reports whether line (starting at a line start, with or
// without its line break) is "--" boundary ["--"] followed only by spaces
// and tabs (RFC 2046 §5.1.1; Python's boundaryre), and whether it is the
// close delimiter.
func matchDelimiter(line, boundary []byte) (isClose, ok bool) {
	if len(line) < 2+len(boundary) || line[0] != '-' || line[1] != '-' ||
		!bytes.Equal(line[2:2+len(boundary)], boundary) {
		return false, false
	}
	rest := line[2+len(boundary):]
	if len(rest) >= 2 && rest[0] == '-' && rest[1] == '-' {
		isClose = true
		rest = rest[2:]
	}
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	switch string(rest) {
	case "", "\n", "\r\n", "\r":
		return isClose, true
	}
	return false, false
}

// lineBreakLen is the length of the line break ending b ("\r\n", "\n",
// "\r" or none).
func lineBreakLen(b []byte) int {
	n := len(b)
	switch {
	case n >= 2 && b[n-2] == '\r' && b[n-1] == '\n':
		return 2
	case n >= 1 && (b[n-1] == '\n' || b[n-1] == '\r'):
		return 1
	}
	return 0
}
