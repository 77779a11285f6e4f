package mimeparse

import (
	"bytes"
	"io"
)

// scanEnd says where a body ended.
type scanEnd struct {
	node    int     // index in parser.stack of the multipart whose delimiter ended it; -1: end of input
	isClose bool    // the close delimiter ("--b--")
	end     int64   // raw offset just past the last body byte
	brk     [2]byte // the line break dropped before the delimiter (or at the end)
	nbrk    int
	lineBrk int // length of the delimiter line's own line break
}

// lineBreak returns the line break scanBody did not write.
func (m *scanEnd) lineBreak() []byte { return m.brk[:m.nbrk] }

func newScanEnd(node int, isClose bool, end int64, brk []byte) scanEnd {
	m := scanEnd{node: node, isClose: isClose, end: end}
	m.nbrk = copy(m.brk[:], brk)
	return m
}

var nlDashDash = []byte("\n--")

// matchStack checks a candidate delimiter line against the boundaries of
// every open multipart, innermost first (an outer boundary also ends the
// inner parts, as in Python's feedparser and in mail clients).
func (p *parser) matchStack(line []byte) (node int, isClose, ok bool) {
	for i := len(p.stack) - 1; i >= 0; i-- {
		b := p.stack[i].boundary
		if b == nil {
			continue
		}
		if c, ok := matchDelimiter(line, b); ok {
			return i, c, true
		}
	}
	return -1, false, false
}

// inMultipart reports whether any multipart is waiting for its delimiter.
func (p *parser) inMultipart() bool {
	for _, n := range p.stack {
		if n.boundary != nil {
			return true
		}
	}
	return false
}

// scanBody streams the body that starts at the current position (a line
// start) to sink, up to the next delimiter line of an open multipart or the
// end of input. The line break before a delimiter belongs to the delimiter
// (RFC 2046 §5.1.1) and is not written; at the end of input inside a
// multipart the final line break is dropped too (as Python does).
//
// Bodies are never held: the buffer is searched for "\n--" with
// bytes.Index and everything before a candidate goes to sink in one Write.
// The last 3 bytes are held back until the next fill, as they may be the
// "\r\n-" of a delimiter.
//
// prevBreak is the length of the line break just before the current
// position that belongs to a delimiter found at once (after a close
// delimiter: the epilogue is empty, the part ends before that break).
func (p *parser) scanBody(sink io.Writer, prevBreak int) scanEnd {
	in := &p.in
	start := true
	noNL := 0 // bytes of the pending candidate line known to hold no "\n"
	for {
		b := in.avail()
		if len(b) < 4 && !in.eof {
			in.fill()
			continue
		}
		ls, bs := -1, 0 // candidate line start, start of the line break before it
		if start {
			if len(b) >= 2 && b[0] == '-' && b[1] == '-' {
				ls = 0
			} else {
				start = false
			}
		}
		if ls < 0 {
			i := bytes.Index(b, nlDashDash)
			if i < 0 {
				if in.eof {
					n := len(b)
					end := n
					if p.inMultipart() {
						end -= lineBreakLen(b)
					}
					sink.Write(b[:end])
					m := newScanEnd(-1, false, in.off+int64(end), b[end:n])
					in.advance(n)
					return m
				}
				if k := len(b) - 3; k > 0 {
					sink.Write(b[:k])
					in.advance(k)
				}
				in.fill()
				continue
			}
			ls, bs = i+1, i
			if i > 0 && b[i-1] == '\r' {
				bs = i - 1
			}
		}
		j := bytes.IndexByte(b[ls+noNL:], '\n')
		if j >= 0 {
			j += noNL
		}
		if j < 0 && !in.eof {
			noNL = len(b) - ls
			if bs > 0 {
				sink.Write(b[:bs])
				in.advance(bs)
				in.fill()
				continue
			}
			if in.fill() || in.eof {
				continue
			}
			// The candidate line does not fit in the buffer: not a delimiter.
			sink.Write(b[:ls+2])
			in.advance(ls + 2)
			start = false
			noNL = 0
			continue
		}
		noNL = 0
		le := len(b)
		if j >= 0 {
			le = ls + j + 1
		}
		if node, isClose, ok := p.matchStack(b[ls:le]); ok {
			sink.Write(b[:bs])
			m := newScanEnd(node, isClose, in.off+int64(bs), b[bs:ls])
			if ls == 0 && start {
				m.end -= int64(prevBreak)
			}
			m.lineBrk = lineBreakLen(b[ls:le])
			in.advance(le)
			return m
		}
		sink.Write(b[:ls+2])
		in.advance(ls + 2)
		start = false
	}
}

// discard is a sink for bodies nobody inspects (parts past the part limit).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// epilogue counts the bytes after a close delimiter and whether any is not
// white space.
type epilogue struct {
	n     int64
	nonws bool
}

func (e *epilogue) Write(p []byte) (int, error) {
	e.n += int64(len(p))
	if !e.nonws {
		for _, c := range p {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				e.nonws = true
				break
			}
		}
	}
	return len(p), nil
}
