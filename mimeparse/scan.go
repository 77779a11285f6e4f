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

// delimSearch is the delimiter search of one body, a pure function over
// the bytes it is shown (scan) with the little state it keeps between
// windows; scanBody does the reading around it.
type delimSearch struct {
	// bounds are the boundaries of the open multiparts, outermost first, at
	// their index in parser.stack; nil for a container that waits for none.
	bounds [][]byte
	start  bool // the window begins at the body's first line, still a candidate
	noNL   int  // bytes of the pending candidate line known to hold no "\n"
	outer  bool // outermost boundary first (Limits.outerFirst)
}

// delimStep is what scan found in a window b.
type delimStep struct {
	n    int  // b[:n] is body: write it, then consume it
	fill bool // then read more input and scan again
	// Otherwise the body ends after b[:n]: b[n:n+brk] is the line break
	// before the delimiter line (or the final one, at the end of input),
	// which belongs to the delimiter (RFC 2046 §5.1.1), and
	// b[n+brk:n+brk+line] is the delimiter line itself.
	brk, line int
	node      int  // index in bounds of the multipart it closes; -1: end of input
	isClose   bool // the close delimiter ("--b--")
	first     bool // the delimiter is the body's first line
}

// scan looks in b, the unread input, for the first line that is the
// delimiter of an open multipart (innermost first: an outer boundary also
// ends the inner parts, as in Python's feedparser and in mail clients).
// eof says no byte follows b; full says b cannot grow (the buffer is full
// and holds no complete candidate line: that line is too long to be a
// delimiter). At the end of input inside a multipart the final line break is
// dropped, as Python does.
//
// Body bytes are found with bytes.Index for "\n--" and handed out in as few
// steps as possible; the last 3 bytes of a window without a candidate are
// held back, as they may be the "\r\n-" of a delimiter.
func (s *delimSearch) scan(b []byte, eof, full bool) delimStep {
	pos := 0 // b[:pos] is body
	for {
		w := b[pos:]
		if len(w) < 4 && !eof {
			return delimStep{n: pos, fill: true}
		}
		ls, bs := -1, 0 // candidate line start, start of the line break before it
		if s.start {
			if len(w) >= 2 && w[0] == '-' && w[1] == '-' {
				ls = 0
			} else {
				s.start = false
			}
		}
		if ls < 0 {
			i := bytes.Index(w, nlDashDash)
			if i < 0 {
				if !eof {
					return delimStep{n: pos + max(len(w)-3, 0), fill: true}
				}
				end := len(w)
				if anyBound(s.bounds) {
					end -= lineBreakLen(w)
				}
				return delimStep{n: pos + end, brk: len(w) - end, node: -1}
			}
			ls, bs = i+1, i
			if i > 0 && w[i-1] == '\r' {
				bs = i - 1
			}
		}
		j := bytes.IndexByte(w[ls+s.noNL:], '\n')
		if j >= 0 {
			j += s.noNL
		}
		if j < 0 && !eof {
			if bs > 0 || !full {
				s.noNL = len(w) - ls
				return delimStep{n: pos + bs, fill: true}
			}
			// The candidate line does not fit in the buffer: not a delimiter.
			pos += ls + 2
			s.start, s.noNL = false, 0
			continue
		}
		s.noNL = 0
		le := len(w)
		if j >= 0 {
			le = ls + j + 1
		}
		if node, isClose, ok := matchBounds(w[ls:le], s.bounds, s.outer); ok {
			return delimStep{n: pos + bs, brk: ls - bs, line: le - ls, node: node, isClose: isClose,
				first: s.start && ls == 0}
		}
		pos += ls + 2
		s.start = false
	}
}

// matchBounds checks a candidate delimiter line against bounds, innermost
// (last) first, or outermost first when outer is set (the reading
// "outer-boundary", readings.go).
func matchBounds(line []byte, bounds [][]byte, outer bool) (node int, isClose, ok bool) {
	if outer {
		for i := range bounds {
			if bounds[i] == nil {
				continue
			}
			if c, ok := matchDelimiter(line, bounds[i]); ok {
				return i, c, true
			}
		}
		return -1, false, false
	}
	for i := len(bounds) - 1; i >= 0; i-- {
		if bounds[i] == nil {
			continue
		}
		if c, ok := matchDelimiter(line, bounds[i]); ok {
			return i, c, true
		}
	}
	return -1, false, false
}

// openBounds returns the boundaries of the stack's multipart, at their
// index in the stack (nil for a container that waits for none).
func (p *parser) openBounds() [][]byte {
	if p.bounds == nil {
		p.bounds = p.boundsBuf[:0]
	}
	p.bounds = p.bounds[:0]
	for _, n := range p.stack {
		p.bounds = append(p.bounds, n.boundary)
	}
	return p.bounds
}

// matchStack checks a candidate delimiter line against the boundaries of
// every open multipart, innermost first.
func (p *parser) matchStack(line []byte) (node int, isClose, ok bool) {
	return matchBounds(line, p.openBounds(), p.lim.outerFirst)
}

// anyBound reports whether any multipart is waiting for its delimiter.
func anyBound(bounds [][]byte) bool {
	for _, b := range bounds {
		if b != nil {
			return true
		}
	}
	return false
}

// scanBody streams the body that starts at the current position (a line
// start) to sink, up to the next delimiter line of an open multipart or the
// end of input (delimSearch.scan decides; this only reads and writes).
// Bodies are never held: what scan hands out goes to sink at once.
//
// prevBreak is the length of the line break just before the current
// position that belongs to a delimiter found at once (after a close
// delimiter: the epilogue is empty, the part ends before that break).
func (p *parser) scanBody(sink io.Writer, prevBreak int) scanEnd {
	in := &p.in
	s := delimSearch{bounds: p.openBounds(), start: true, outer: p.lim.outerFirst}
	full := false
	for {
		b := in.avail()
		st := s.scan(b, in.eof, full)
		if st.n > 0 {
			sink.Write(b[:st.n])
		}
		if st.fill {
			in.advance(st.n)
			full = !in.fill() && !in.eof
			continue
		}
		m := newScanEnd(st.node, st.isClose, in.off+int64(st.n), b[st.n:st.n+st.brk])
		if st.first {
			m.end -= int64(prevBreak)
		}
		m.lineBrk = lineBreakLen(b[st.n+st.brk : st.n+st.brk+st.line])
		in.advance(st.n + st.brk + st.line)
		return m
	}
}

// discard is a sink for bodies nobody inspects (parts past the part limit).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
