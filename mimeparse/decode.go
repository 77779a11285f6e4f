package mimeparse

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
)

const decodeChunk = 32 << 10

// b64Writer decodes base64 (RFC 2045 §6.8) written to it in chunks of any
// size and writes the bytes to w. The fused path (b64Fast) decodes whole
// quads straight from the input, skipping line breaks between quads. What
// it stops at (padding, a line break inside a quad, any other byte) goes
// to the general path: line breaks stripped by copying whole lines, 32 KiB
// decoded at a time with the standard library. Anything else (junk
// characters, padding in the middle) falls back to a lenient
// byte-at-a-time decoder for the rest of the body, which skips characters
// outside the alphabet and goes on after padding.
type b64Writer struct {
	w       io.Writer
	pending []byte // alphabet characters not yet decoded (fast path)
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
	*d = b64Writer{w: w, pending: pending[:0], out: out}
}

func (d *b64Writer) Write(p []byte) (int, error) {
	n := len(p)
	if d.slow {
		d.lenient(p)
		return n, nil
	}
	if !d.padded {
		p = d.fused(p)
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		var seg []byte
		if i < 0 {
			seg, p = p, nil
		} else {
			seg, p = p[:i], p[i+1:]
		}
		if len(seg) > 0 && seg[len(seg)-1] == '\r' {
			seg = seg[:len(seg)-1]
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

// fused decodes what b64Fast can of p, after completing a quad the last
// write left part of in pending, and returns the rest for the general
// path. The bytes are those the general path would give: whole quads of
// the alphabet, without padding, decode the same strictly or leniently
// (FuzzB64Fused checks it against the general path alone).
func (d *b64Writer) fused(p []byte) []byte {
	if k := len(d.pending); k > 0 {
		if k >= 4 || len(p) < 4-k {
			return p
		}
		var q [4]byte
		copy(q[:], d.pending)
		copy(q[k:], p[:4-k])
		x := b64q0[q[0]] | b64q1[q[1]] | b64q2[q[2]] | b64q3[q[3]]
		if x >= 1<<24 {
			return p
		}
		d.out[0], d.out[1], d.out[2] = byte(x>>16), byte(x>>8), byte(x)
		d.w.Write(d.out[:3])
		d.pending = d.pending[:0]
		p = p[4-k:]
	}
	for len(p) > 0 {
		nd, ns := b64Fast(d.out, p)
		if nd > 0 {
			d.w.Write(d.out[:nd])
		}
		p = p[ns:]
		if nd+3 <= len(d.out) {
			break // stopped on something b64Fast does not take, not on a full d.out
		}
	}
	return p
}

// b64Fast decodes src into dst while src holds whole quads of the base64
// alphabet, with line breaks ("\n" or "\r\n") only between quads. It
// stops before anything else, before a quad that would not fit in dst, and
// before a "\r" that ends src (the next write may start with its "\n").
// It returns the bytes written and read.
func b64Fast(dst, src []byte) (nd, ns int) {
	for {
		// Two quads at a time, written as one 8-byte store (its last two
		// bytes overwritten next).
		for len(src)-ns >= 8 && len(dst)-nd >= 8 {
			s := src[ns : ns+8 : ns+8]
			x := b64q0[s[0]] | b64q1[s[1]] | b64q2[s[2]] | b64q3[s[3]]
			y := b64q0[s[4]] | b64q1[s[5]] | b64q2[s[6]] | b64q3[s[7]]
			if x|y >= 1<<24 {
				break
			}
			binary.BigEndian.PutUint64(dst[nd:], uint64(x)<<40|uint64(y)<<16)
			nd += 6
			ns += 8
		}
		for ns+4 <= len(src) && nd+3 <= len(dst) {
			x := b64q0[src[ns]] | b64q1[src[ns+1]] | b64q2[src[ns+2]] | b64q3[src[ns+3]]
			if x >= 1<<24 {
				break
			}
			dst[nd], dst[nd+1], dst[nd+2] = byte(x>>16), byte(x>>8), byte(x)
			nd += 3
			ns += 4
		}
		switch {
		case ns < len(src) && src[ns] == '\n':
			ns++
		case ns+1 < len(src) && src[ns] == '\r' && src[ns+1] == '\n':
			ns += 2
		default:
			return nd, ns
		}
	}
}

// b64q0..b64q3 give a character's six bits at its place in a quad; a
// character outside the alphabet sets bit 24 and up.
var b64q0, b64q1, b64q2, b64q3 = func() (q0, q1, q2, q3 [256]uint32) {
	for i := range q0 {
		v := uint32(b64dec[i])
		if v == 0xff {
			q0[i], q1[i], q2[i], q3[i] = 1<<24, 1<<24, 1<<24, 1<<24
			continue
		}
		q0[i], q1[i], q2[i], q3[i] = v<<18, v<<12, v<<6, v
	}
	return
}()

// flush decodes the pending characters: a multiple of four of them, or all
// of them at the end.
func (d *b64Writer) flush(final bool) {
	m := len(d.pending) &^ 3
	if m > 0 {
		if d.padded {
			d.after = true
		}
		dn, err := base64.StdEncoding.Decode(d.out[:m/4*3], d.pending[:m])
		if err != nil {
			d.slow = true
			rest := d.pending
			d.pending = d.pending[:0]
			d.lenient(rest)
			return
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
