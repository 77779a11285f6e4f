package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"unicode/utf16"
)

// TNEF ([MS-OXTNEF]) as Outlook sends it in winmail.dat: a signature, a
// key, then attributes (level, id, length, data, checksum). Attachments
// start with attAttachRendData; their bytes are in attAttachData, their
// short name in attAttachTitle, the long one in the MAPI property
// PR_ATTACH_LONG_FILENAME inside attAttachment.

const (
	maxEmbedded    = 100 // uuencode blocks or TNEF attachments per body
	maxNest        = 2   // TNEF inside TNEF inside ...
	tnefMaxSmall   = 1 << 20
	attAttachRend  = 0x9002
	attAttachTitle = 0x8010
	attAttachData  = 0x800F
	attAttachment  = 0x9005
	prLongFilename = 0x3707
)

type tnefAttachment struct {
	title, long string
	ins         *Inspector
}

// tnef lists the attachments of a TNEF stream as Embedded (Kind 't'),
// each inspected like a MIME leaf.
func (w *walker) tnef(r io.Reader) {
	if w.nest >= maxNest {
		w.res.addDefect(DefectLimitEmbedded)
		return
	}
	br := bufio.NewReader(r)
	var hdr [6]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil || !bytes.Equal(hdr[:4], magicTNEF) {
		w.res.addDefect(DefectTNEFCorrupt)
		return
	}
	var cur *tnefAttachment
	count := 0
	flush := func() {
		if cur == nil {
			return
		}
		name := cur.long
		if name == "" {
			name = cur.title
		}
		if cur.ins == nil {
			opts := w.opts
			opts.Text = false
			cur.ins = newNested(opts, w.nest+1) // an attachment without data: empty
		}
		cur.ins.opts.Name = name
		w.res.Embedded = append(w.res.Embedded, Embedded{Kind: 't', Name: name, Result: cur.ins.Close()})
		cur = nil
	}
	defer flush()
	for {
		var ah [9]byte
		if _, err := io.ReadFull(br, ah[:]); err != nil {
			if err != io.EOF {
				w.tnefCorrupt()
			}
			return
		}
		id := binary.LittleEndian.Uint32(ah[1:]) & 0xFFFF
		n := int64(binary.LittleEndian.Uint32(ah[5:]))
		if id == attAttachRend {
			flush()
			count++
			if count > maxEmbedded {
				w.res.addDefect(DefectLimitEmbedded)
				return
			}
			cur = &tnefAttachment{}
		}
		switch {
		case cur != nil && id == attAttachData && cur.ins == nil:
			opts := w.opts
			opts.Text, opts.Name, opts.Declared = false, cur.title, ""
			cur.ins = newNested(opts, w.nest+1)
			if m, err := io.CopyN(cur.ins, br, n); err != nil || m != n {
				w.tnefCorrupt()
				return
			}
		case cur != nil && (id == attAttachTitle || id == attAttachment) && n <= tnefMaxSmall:
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				w.tnefCorrupt()
				return
			}
			if id == attAttachTitle {
				cur.title = string(bytes.TrimRight(b, "\x00"))
			} else {
				cur.long = mapiLongFilename(b)
			}
		default:
			if m, err := io.CopyN(io.Discard, br, n); err != nil || m != n {
				w.tnefCorrupt()
				return
			}
		}
		if _, err := io.ReadFull(br, ah[:2]); err != nil { // checksum
			w.tnefCorrupt()
			return
		}
	}
}

func (w *walker) tnefCorrupt() {
	if !w.truncated {
		w.res.addDefect(DefectTNEFCorrupt)
	}
}

// mapiLongFilename finds PR_ATTACH_LONG_FILENAME in a MAPI property list
// ([MS-OXTNEF] 2.1.3.4). It returns "" when absent or malformed.
func mapiLongFilename(b []byte) string {
	if len(b) < 4 {
		return ""
	}
	count := binary.LittleEndian.Uint32(b)
	b = b[4:]
	for i := uint32(0); i < count && len(b) >= 4; i++ {
		typ := binary.LittleEndian.Uint16(b)
		id := binary.LittleEndian.Uint16(b[2:])
		b = b[4:]
		if id >= 0x8000 { // named property: GUID, kind, id or name
			if len(b) < 20 {
				return ""
			}
			kind := binary.LittleEndian.Uint32(b[16:])
			b = b[20:]
			if kind == 0 {
				b = skipN(b, 4)
			} else {
				if len(b) < 4 {
					return ""
				}
				b = skipN(b[4:], pad4(int(binary.LittleEndian.Uint32(b))))
			}
		}
		multi := typ&0x1000 != 0
		base := typ &^ 0x1000
		var fixed int
		switch base {
		case 0x0002, 0x0003, 0x0004, 0x000A, 0x000B:
			fixed = 4
		case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040:
			fixed = 8
		case 0x0048:
			fixed = 16
		case 0x001E, 0x001F, 0x0102, 0x000D:
		default:
			return ""
		}
		nvals := uint32(1)
		if multi || fixed == 0 {
			if len(b) < 4 {
				return ""
			}
			nvals = binary.LittleEndian.Uint32(b)
			b = b[4:]
		}
		for v := uint32(0); v < nvals; v++ {
			if fixed > 0 {
				if len(b) < fixed {
					return ""
				}
				b = b[fixed:]
				continue
			}
			if len(b) < 4 {
				return ""
			}
			l := int(binary.LittleEndian.Uint32(b))
			b = b[4:]
			if l < 0 || l > len(b) {
				return ""
			}
			val := b[:l]
			if id == prLongFilename && v == 0 {
				if base == 0x001F {
					return decodeUTF16(val)
				}
				if base == 0x001E {
					return string(bytes.TrimRight(val, "\x00"))
				}
			}
			b = skipN(b, pad4(l))
		}
	}
	return ""
}

func pad4(n int) int { return (n + 3) &^ 3 }

func skipN(b []byte, n int) []byte {
	if n < 0 || n > len(b) {
		return nil
	}
	return b[n:]
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
