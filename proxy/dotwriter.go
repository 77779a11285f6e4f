package proxy

import "io"

// dotEncoder is the pure core of the DATA writer: it re-encodes a message
// for the upstream with canonical CRLF line breaks (a bare CR or LF becomes
// CRLF) and dot-stuffing (RFC 5321 §4.5.2), so the upstream can see no end of
// data but the one mailgate writes (DESIGN invariant 2).
type dotEncoder struct {
	bol bool // at the start of a line
	cr  bool // a CR is pending
}

func newDotEncoder() dotEncoder { return dotEncoder{bol: true} }

// encode appends the encoding of src to dst.
func (e *dotEncoder) encode(dst, src []byte) []byte {
	for _, c := range src {
		if e.cr {
			e.cr = false
			dst = append(dst, '\r', '\n')
			e.bol = true
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			e.cr = true
			continue
		case '\n':
			dst = append(dst, '\r', '\n')
			e.bol = true
			continue
		}
		if e.bol && c == '.' {
			dst = append(dst, '.')
		}
		e.bol = false
		dst = append(dst, c)
	}
	return dst
}

// finish appends the end of data: a line break if the message did not end
// with one, then "." CRLF.
func (e *dotEncoder) finish(dst []byte) []byte {
	if e.cr {
		e.cr = false
		dst = append(dst, '\r', '\n')
		e.bol = true
	}
	if !e.bol {
		dst = append(dst, '\r', '\n')
	}
	e.bol = true
	return append(dst, '.', '\r', '\n')
}

// dotWriter writes a message to w as DATA content; Close writes the end of
// data (it does not close w).
type dotWriter struct {
	w   io.Writer
	e   dotEncoder
	buf []byte
}

var _ io.WriteCloser = (*dotWriter)(nil)

func newDotWriter(w io.Writer) *dotWriter {
	return &dotWriter{w: w, e: newDotEncoder(), buf: make([]byte, 0, 8192)}
}

func (d *dotWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > 4096 {
			chunk = chunk[:4096]
		}
		d.buf = d.e.encode(d.buf[:0], chunk)
		if _, err := d.w.Write(d.buf); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (d *dotWriter) Close() error {
	d.buf = d.e.finish(d.buf[:0])
	_, err := d.w.Write(d.buf)
	return err
}
