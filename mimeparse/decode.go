package mimeparse

import (
	"bytes"
	"io"

	simd64 "github.com/segmentio/asm/base64"
)

const decodeChunk = 32 << 10

// b64Writer decodes base64 (RFC 2045 §6.8) written to it in chunks of any
// size and writes the bytes to w. The fast path strips line breaks by
// copying whole lines and decodes 32 KiB at a time with segmentio/asm's
// decoder (AVX2 where the CPU has it, the standard library's otherwise),
// which gives the standard library's bytes and errors (FuzzB64Ref).
// Anything else (junk characters, padding in the middle) falls back to a
// lenient byte-at-a-time decoder for the rest of the body, which skips
// characters outside the alphabet and goes on after padding.
type b64Writer struct {
	w       io.Writer
	pending []byte                             // alphabet characters not yet decoded (fast path)
	decode  func(dst, src []byte) (int, error) // the fast path's decoder
	lineLen int                                // the length of the last whole CRLF line (Write's line fast path; -1: off, FuzzB64Ref)
	out     []byte
	slow    bool
	padded  bool // a quad with padding was decoded
	acc     uint32
	qn      int // characters in acc
	pads    int
	junk    bool
	after   bool // data after padding
	badPad  bool
}

func (d *b64Writer) reset(w io.Writer, pending, out []byte) {
	*d = b64Writer{w: w, pending: pending[:0], out: out, decode: simdDecode}
}

func (d *b64Writer) Write(p []byte) (int, error) {
	n := len(p)
	if d.slow {
		d.lenient(p)
		return n, nil
	}
	for len(p) > 0 {
		// Whole lines as long as the last full one and ending in CRLF go
		// in without a search: the usual body is 76 characters a line. A
		// line break or carriage return inside such a line reaches the
		// decoder, which refuses it, and the lenient decoder then skips
		// it as appendNoCR would have (FuzzB64Ref: same bytes, same
		// defects, however the body is cut).
		if l := d.lineLen; l > 0 {
			for len(p) > l+1 && p[l] == '\r' && p[l+1] == '\n' && len(d.pending)+l <= cap(d.pending) {
				d.pending = append(d.pending, p[:l]...)
				p = p[l+2:]
			}
			if len(p) == 0 {
				break
			}
		}
		i := bytes.IndexByte(p, '\n')
		var seg []byte
		if i < 0 {
			seg, p = p, nil
		} else {
			seg, p = p[:i], p[i+1:]
		}
		if len(seg) > 0 && seg[len(seg)-1] == '\r' {
			seg = seg[:len(seg)-1]
			if i >= 0 && len(seg) >= 4 && len(p) > 0 && d.lineLen >= 0 {
				d.lineLen = len(seg) // a whole CRLF line, with more after it
			}
		}
		if len(d.pending)+len(seg) > cap(d.pending) {
			d.flush(false)
			if d.slow {
				d.lenient(seg)
				if len(p) > 0 {
					d.lenient(p)
				}
				return n, nil
			}
			if len(d.pending)+len(seg) > cap(d.pending) {
				// A line longer than the buffer: the rest of the body
				// byte by byte, after the part quad flush left.
				d.slow = true
				rest := d.pending
				d.pending = d.pending[:0]
				d.lenient(rest)
				d.lenient(seg)
				d.lenient(p)
				return n, nil
			}
		}
		d.pending = appendNoCR(d.pending, seg)
	}
	return n, nil
}

// appendNoCR appends seg without its carriage returns: one inside a line
// is skipped as the standard library's decoder and the lenient one skip
// it, and taking it out first keeps padding detected where it ends a
// block ("QQ=\r=" cut anywhere reads the same).
func appendNoCR(dst, seg []byte) []byte {
	if bytes.IndexByte(seg, '\r') < 0 {
		return append(dst, seg...)
	}
	for _, c := range seg {
		if c != '\r' {
			dst = append(dst, c)
		}
	}
	return dst
}

// flush decodes the pending characters: a multiple of four of them, or all
// of them at the end.
func (d *b64Writer) flush(final bool) {
	m := len(d.pending) &^ 3
	if m > 0 {
		dn, err := d.decode(d.out[:m/4*3], d.pending[:m])
		if err != nil {
			// The lenient decoder judges what follows padding: blanks
			// after it are not data (FuzzB64Ref found "QQ==" then
			// spaces flagged when the spaces came in a later block).
			d.slow = true
			rest := d.pending
			d.pending = d.pending[:0]
			d.lenient(rest)
			return
		}
		if d.padded {
			d.after = true // a whole block decoded after a padded one
		}
		d.w.Write(d.out[:dn])
		if d.pending[m-1] == '=' {
			d.padded = true
		}
		k := copy(d.pending, d.pending[m:])
		d.pending = d.pending[:k]
	}
	if final && len(d.pending) > 0 {
		d.slow = true
		rest := d.pending
		d.pending = d.pending[:0]
		d.lenient(rest)
	}
}

// simdDecode is segmentio/asm's decoder, made a func value once.
var simdDecode = simd64.StdEncoding.Decode

var b64dec = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(a); i++ {
		t[a[i]] = byte(i)
	}
	return t
}()

// lenient decodes byte by byte, as Python's binascii.a2b_base64 does in
// non-strict mode, except that it goes on after a padded quad (clients
// that decode line by line see that data; Python stops).
func (d *b64Writer) lenient(p []byte) {
	o := 0
	out := d.out
	for _, c := range p {
		v := b64dec[c]
		if v == 0xff {
			switch c {
			case '=':
				if d.qn >= 2 {
					d.pads++
					if d.qn+d.pads >= 4 {
						// padded quad: emit what it holds
						switch d.qn {
						case 2:
							out[o] = byte(d.acc >> 4)
							o++
						case 3:
							out[o] = byte(d.acc >> 10)
							out[o+1] = byte(d.acc >> 2)
							o += 2
						}
						d.acc, d.qn, d.pads = 0, 0, 0
						d.padded = true
					}
				} else {
					d.badPad = true
				}
			case ' ', '\t', '\r', '\n':
			default:
				d.junk = true
			}
			continue
		}
		if d.padded && d.qn == 0 {
			d.after = true
		}
		if d.pads > 0 { // "=" then data: the padding was bogus
			d.badPad = true
			d.pads = 0
		}
		d.acc = d.acc<<6 | uint32(v)
		d.qn++
		if d.qn == 4 {
			out[o] = byte(d.acc >> 16)
			out[o+1] = byte(d.acc >> 8)
			out[o+2] = byte(d.acc)
			o += 3
			d.acc, d.qn = 0, 0
		}
		if o > len(out)-4 {
			d.w.Write(out[:o])
			o = 0
		}
	}
	if o > 0 {
		d.w.Write(out[:o])
	}
}

// close decodes what is left and returns the defects seen.
func (d *b64Writer) close() []string {
	d.flush(true)
	switch d.qn {
	case 1:
		d.badPad = true
	case 2:
		d.badPad = true
		d.out[0] = byte(d.acc >> 4)
		d.w.Write(d.out[:1])
	case 3:
		d.badPad = true
		d.out[0] = byte(d.acc >> 10)
		d.out[1] = byte(d.acc >> 2)
		d.w.Write(d.out[:2])
	}
	d.qn = 0
	var ds []string
	if d.junk {
		ds = append(ds, DefectInvalidBase64)
	}
	if d.badPad {
		ds = append(ds, DefectBase64Padding)
	}
	if d.after {
		ds = append(ds, DefectBase64AfterPadding)
	}
	return ds
}

// qpWriter decodes quoted-printable (RFC 2045 §6.7) the way Python's
// binascii.a2b_qp does: "=" + line break is a soft break ("=\r" skips to
// the "\n"), "=XX" (either case) is a byte, "==" is "=", and any other "="
// stays literally (invalid-quoted-printable). A lone "=" at the very end is
// dropped.
type qpWriter struct {
	w      io.Writer
	out    []byte
	hold   [2]byte // bytes after a "=" not yet decidable
	held   int     // -1: no pending "="; else number of bytes in hold
	skipLF bool    // after "=\r": skip to the "\n"
	bad    bool
}

func (d *qpWriter) reset(w io.Writer, out []byte) {
	*d = qpWriter{w: w, out: out, held: -1}
}

func (d *qpWriter) Write(p []byte) (int, error) {
	n := len(p)
	o := 0
	out := d.out
	emit := func(c byte) {
		out[o] = c
		o++
		if o == len(out) {
			d.w.Write(out)
			o = 0
		}
	}
	for len(p) > 0 {
		if d.skipLF {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				p = nil
				break
			}
			p = p[i+1:]
			d.skipLF = false
			continue
		}
		if d.held >= 0 {
			d.hold[d.held] = p[0]
			d.held++
			p = p[1:]
			h := d.hold[:d.held]
			switch {
			case h[0] == '\n':
				d.held = -1
			case h[0] == '\r':
				d.held = -1
				d.skipLF = true
			case h[0] == '=':
				emit('=')
				d.held = -1
			case d.held == 1 && isHex(h[0]):
				// need one more
			case d.held == 2 && isHex(h[0]) && isHex(h[1]):
				emit(unhex(h[0])<<4 | unhex(h[1]))
				d.held = -1
			default:
				// "=" not followed by a valid escape: keep it, and re-read
				// the held bytes as ordinary input.
				d.bad = true
				emit('=')
				rest := append([]byte(nil), h...)
				d.held = -1
				if o > 0 {
					d.w.Write(out[:o])
					o = 0
				}
				d.Write(rest)
			}
			continue
		}
		i := bytes.IndexByte(p, '=')
		if i < 0 {
			i = len(p)
		}
		for run := p[:i]; len(run) > 0; { // literal bytes: copy, not byte by byte
			k := copy(out[o:], run)
			o += k
			run = run[k:]
			if o == len(out) {
				d.w.Write(out)
				o = 0
			}
		}
		p = p[i:]
		if len(p) >= 3 {
			// The common escapes decided here, without the state machine:
			// "=XX" and the soft break "=\r\n" or "=\n".
			if isHex(p[1]) && isHex(p[2]) {
				emit(unhex(p[1])<<4 | unhex(p[2]))
				p = p[3:]
				continue
			}
			if p[1] == '\r' && p[2] == '\n' {
				p = p[3:]
				continue
			}
			if p[1] == '\n' {
				p = p[2:]
				continue
			}
		}
		if len(p) > 0 {
			d.held = 0
			p = p[1:]
		}
	}
	if o > 0 {
		d.w.Write(out[:o])
	}
	return n, nil
}

func (d *qpWriter) close() []string {
	if d.held > 0 {
		// "=" with fewer than two bytes after it at the end
		d.bad = true
		h := append([]byte{'='}, d.hold[:d.held]...)
		d.held = -1
		d.w.Write(h)
	}
	d.held = -1
	if d.bad {
		return []string{DefectInvalidQP}
	}
	return nil
}
