package mimeparse

import (
	"bytes"
	"encoding/base64"
	"io"
)

// refB64Writer is b64Writer with the standard library's decoder in its
// fast path, as it was before segmentio/asm's: FuzzB64Ref checks the two
// decode every input, cut into writes of any size, to the same bytes and
// defects.
type refB64Writer struct {
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

func (d *refB64Writer) reset(w io.Writer, pending, out []byte) {
	*d = refB64Writer{w: w, pending: pending[:0], out: out}
}

func (d *refB64Writer) Write(p []byte) (int, error) {
	n := len(p)
	if d.slow {
		d.lenient(p)
		return n, nil
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
			if len(seg) > cap(d.pending) {
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

// flush decodes the pending characters: a multiple of four of them, or all
// of them at the end.
func (d *refB64Writer) flush(final bool) {
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

var refB64dec = func() (t [256]byte) {
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
func (d *refB64Writer) lenient(p []byte) {
	o := 0
	out := d.out
	for _, c := range p {
		v := refB64dec[c]
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
func (d *refB64Writer) close() []string {
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
