package upstream

import (
	"bytes"
	"io"
	"mailgate/spool"
)

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
	// The next LF and CR at or after i (len(src): none), each searched
	// again only once i has passed it, so the scanning stays linear
	// whatever the mix of CRs and LFs.
	nextLF, nextCR := -1, -1
	for i := 0; i < len(src); i++ {
		if !e.cr && !e.bol {
			// Fast path: mid-line, copy the run up to the next CR or LF.
			if nextLF < i {
				nextLF = indexFrom(src, i, '\n')
			}
			if nextCR < i {
				nextCR = indexFrom(src, i, '\r')
			}
			end := min(nextLF, nextCR)
			dst = append(dst, src[i:end]...)
			if i = end; i == len(src) {
				break
			}
		}
		c := src[i]
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

// indexFrom is the index of the first c in b at or after i, or len(b).
func indexFrom(b []byte, i int, c byte) int {
	if j := bytes.IndexByte(b[i:], c); j >= 0 {
		return i + j
	}
	return len(b)
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
// data (it does not close w). It encodes into a pooled spool.ChunkSize buffer
// and writes to w only when that is full, so the upstream sees one write
// (one syscall) per 64 KiB, not one per line or per 4 KiB.
type dotWriter struct {
	w   io.Writer
	e   dotEncoder
	b   *[]byte // from chunkPool; nil after Close
	buf []byte  // encoded, not yet written: (*b)[:len]
}

var (
	_ io.WriteCloser = (*dotWriter)(nil)
	_ io.ReaderFrom  = (*dotWriter)(nil)
)

func NewDotWriter(w io.Writer) *dotWriter {
	b := spool.GetChunk()
	return &dotWriter{w: w, e: newDotEncoder(), b: b, buf: (*b)[:0]}
}

func (d *dotWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		// Encoding may double every byte (a leading dot, LF to CRLF), and
		// a pending CR adds two more.
		room := (cap(d.buf) - len(d.buf) - 2) / 2
		if room < 512 {
			if err := d.flush(); err != nil {
				return n, err
			}
			continue
		}
		chunk := p
		if len(chunk) > room {
			chunk = chunk[:room]
		}
		d.buf = d.e.encode(d.buf, chunk)
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// ReadFrom encodes r's bytes, read in 32 KiB pieces into the second half
// of a pooled buffer (io.Copy would allocate one per message).
func (d *dotWriter) ReadFrom(r io.Reader) (int64, error) {
	in := spool.GetChunk()
	defer spool.PutChunk(in)
	p := (*in)[:spool.ChunkSize/2]
	var total int64
	for {
		n, err := r.Read(p)
		if n > 0 {
			if _, werr := d.Write(p[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (d *dotWriter) flush() error {
	if len(d.buf) == 0 {
		return nil
	}
	_, err := d.w.Write(d.buf)
	d.buf = d.buf[:0]
	return err
}

// Close writes the end of data and everything still buffered, and returns
// the buffer to the pool.
func (d *dotWriter) Close() error {
	if d.b == nil {
		return nil
	}
	if cap(d.buf)-len(d.buf) < 8 {
		if err := d.flush(); err != nil {
			return err
		}
	}
	d.buf = d.e.finish(d.buf)
	err := d.flush()
	spool.PutChunk(d.b)
	d.b, d.buf = nil, nil
	return err
}
