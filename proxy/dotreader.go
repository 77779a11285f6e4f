package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DATA violations, reported by the dot reader at the real end of data (docs/DEVELOPING.md
// rule 6: record, read on to CRLF.CRLF, only then reply).
var (
	errBareCR = errors.New("proxy: bare CR in DATA")
	errBareLF = errors.New("proxy: bare LF in DATA")
	errNUL    = errors.New("proxy: NUL byte in DATA")
)

// lineStart says how the current line began: after a real CRLF (or at the
// start of data, right after the DATA command's CRLF), after a bare CR or LF
// that normalize mode turned into CRLF, or not at a line start at all.
const (
	bolNone = iota
	bolReal
	bolNorm
)

// dotScanner is the pure core of the DATA reader (RFC 5321 §4.5.2 and
// §2.3.8): it removes dot-stuffing, finds the end of data, and checks line
// endings. Only CRLF "." CRLF ends the data, where the CRLF before the dot is
// a real one (DESIGN invariant 2). Bare CR, bare LF and NUL are recorded; in
// normalize mode bare CR and bare LF become CRLF in the output, otherwise
// they are passed through (the message is rejected anyway). The output
// always carries the message with dot-stuffing removed; its line breaks are
// canonical CRLF unless a violation was recorded.
type dotScanner struct {
	normalize bool
	chunked   bool // BDAT content: no dot-stuffing, no end-of-data line; line endings checked alike
	bol       int  // how the current line began (bolNone: mid-line)
	dot       bool // the current line so far is a single (removed) leading dot
	cr        bool // a CR is pending: is it the first half of CRLF?
	done      bool // end of data seen

	bareCR, bareLF, nul bool
}

func newDotScanner(normalize bool) dotScanner {
	return dotScanner{normalize: normalize, bol: bolReal}
}

// newChunkScanner is the scanner of BDAT content (RFC 3030): the same
// line-ending and NUL checks as DATA, without dot-stuffing or an
// end-of-data line; the message ends where the LAST chunk does (finish).
func newChunkScanner(normalize bool) dotScanner {
	return dotScanner{normalize: normalize, chunked: true, bol: bolReal}
}

// finish ends chunked content: a CR still waiting for its LF is bare.
func (s *dotScanner) finish(dst []byte) []byte {
	if s.cr {
		s.cr = false
		s.bareCR = true
		dst = s.lineBreakBare(dst, '\r')
	}
	s.done = true
	return dst
}

// scan consumes src up to and including the end-of-data line, appending the
// message bytes to dst. It returns the extended dst and how many bytes of
// src it consumed; after the end of data, s.done is true and scan consumes
// nothing more.
func (s *dotScanner) scan(dst, src []byte) ([]byte, int) {
	for i := 0; i < len(src); i++ {
		if s.done {
			return dst, i
		}
		if !s.cr && s.bol == bolNone {
			// Fast path: copy the run of ordinary bytes up to the next
			// CR, LF or NUL.
			if n := ordinaryRun(src[i:]); n > 0 {
				dst = append(dst, src[i:i+n]...)
				i += n
				if i == len(src) {
					break
				}
			}
		}
		c := src[i]
		if s.cr {
			s.cr = false
			if c == '\n' {
				if s.dot && s.bol == bolReal {
					// RFC 5321 §4.1.1.4: CRLF "." CRLF.
					s.done = true
					return dst, i + 1
				}
				if s.dot {
					// A lone "." after a normalized line break is
					// content, never the end of data: keep it.
					dst = append(dst, '.')
				}
				dst = append(dst, '\r', '\n')
				s.bol, s.dot = bolReal, false
				continue
			}
			// Bare CR: c starts a new line (normalize) or continues this one.
			s.bareCR = true
			dst = s.lineBreakBare(dst, '\r')
		}
		switch c {
		case '\r':
			s.cr = true
			continue
		case '\n':
			s.bareLF = true
			dst = s.lineBreakBare(dst, '\n')
			continue
		case 0:
			s.nul = true
		}
		if s.bol != bolNone && c == '.' && !s.dot && !s.chunked {
			// RFC 5321 §4.5.2: a leading dot is removed.
			s.dot = true
			continue
		}
		if s.dot {
			s.dot = false
		}
		s.bol = bolNone
		dst = append(dst, c)
	}
	return dst, len(src)
}

// ordinaryRun is the length of the prefix of b without CR, LF or NUL.
func ordinaryRun(b []byte) int {
	n := len(b)
	if i := bytes.IndexByte(b[:n], '\r'); i >= 0 {
		n = i
	}
	if i := bytes.IndexByte(b[:n], '\n'); i >= 0 {
		n = i
	}
	if i := bytes.IndexByte(b[:n], 0); i >= 0 {
		n = i
	}
	return n
}

// lineBreakBare handles a bare CR or LF (b) ending the current line.
func (s *dotScanner) lineBreakBare(dst []byte, b byte) []byte {
	if s.dot {
		dst = append(dst, '.')
		s.dot = false
	}
	if s.normalize {
		s.bol = bolNorm
		return append(dst, '\r', '\n')
	}
	s.bol = bolNone
	return append(dst, b)
}

// err is the violation to report at the end of data, or nil. NUL is never
// normalized.
func (s *dotScanner) err() error {
	switch {
	case s.nul:
		return errNUL
	case s.normalize:
		return nil
	case s.bareLF:
		return errBareLF
	case s.bareCR:
		return errBareCR
	}
	return nil
}

// dotReader reads one message of DATA from a bufio.Reader, never consuming
// a byte past the end-of-data line, so that pipelined commands after it stay
// in the buffer. At the end of data, Read returns io.EOF, or the violation
// (errBareLF, errBareCR, errNUL) in its place.
type dotReader struct {
	br   *bufio.Reader
	s    dotScanner
	out  []byte // scanned, not yet returned
	off  int
	rerr error // read error from br (the connection)
}

var _ io.Reader = (*dotReader)(nil)

func newDotReader(br *bufio.Reader, normalize bool) *dotReader {
	return &dotReader{br: br, s: newDotScanner(normalize)}
}

func (d *dotReader) Read(p []byte) (int, error) {
	for d.off == len(d.out) {
		if d.s.done {
			if err := d.s.err(); err != nil {
				return 0, err
			}
			return 0, io.EOF
		}
		if d.rerr != nil {
			return 0, d.rerr
		}
		d.out, d.off = d.out[:0], 0
		n := d.br.Buffered()
		if n == 0 {
			if _, err := d.br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				d.rerr = err
				continue
			}
			n = d.br.Buffered()
		}
		// Scan straight into p when it can take the worst case (three
		// bytes out per byte in, a pending CR's three more): no copy
		// through d.out, and all that is buffered in one go.
		if direct := (len(p) - 3) / 3; direct >= 512 {
			buf, _ := d.br.Peek(min(n, direct))
			out, used := d.s.scan(p[:0:len(p)], buf)
			if _, err := d.br.Discard(used); err != nil {
				d.rerr = err
			}
			if len(out) > 0 {
				return len(out), nil
			}
			continue
		}
		if n > 4096 {
			n = 4096
		}
		buf, _ := d.br.Peek(n)
		var used int
		d.out, used = d.s.scan(d.out, buf)
		if _, err := d.br.Discard(used); err != nil {
			d.rerr = err
		}
	}
	n := copy(p, d.out[d.off:])
	d.off += n
	return n, nil
}

// drain reads on to the end of data, discarding; it returns the violation
// or the connection error, nil for a clean end.
func (d *dotReader) drain() error {
	_, err := io.Copy(io.Discard, d)
	if err != nil {
		return err
	}
	return d.s.err()
}

// ended reports whether the real end of data was read.
func (d *dotReader) ended() bool { return d.s.done }
