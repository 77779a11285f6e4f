package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
	"unicode/utf16"
)

// TNEF ([MS-OXTNEF]) as Outlook sends it in winmail.dat: a signature, a
// key, then attributes (level, id, length, data, checksum). Attachments
// start with attAttachRendData; their bytes are in attAttachData, their
// short name in attAttachTitle, and their MAPI properties in attAttachment:
// PR_ATTACH_LONG_FILENAME, and PR_ATTACH_DATA_OBJ / PR_ATTACH_DATA_BIN,
// which hold embedded messages (a TNEF stream of their own), OLE objects
// (a compound file) or plain bytes.
//
// The reader works on the spilled body by offset (io.ReaderAt), so no
// attribute is ever held whole in memory; every loop advances by at least
// one byte and is bounded by the body size.

const (
	maxEmbedded     = 100 // uuencode blocks or TNEF attachments per body
	maxNest         = 3   // TNEF inside TNEF inside ...
	attAttachRend   = 0x9002
	attAttachTitle  = 0x8010
	attAttachData   = 0x800F
	attAttachment   = 0x9005
	prAttachDataObj = 0x3701
	prLongFilename  = 0x3707
	mapiMaxName     = 4096
)

// section is a byte range of the TNEF body.
type section struct{ off, n int64 }

type tnefAttachment struct {
	title, long string
	data        *section  // attAttachData
	objs        []section // PR_ATTACH_DATA_OBJ / _BIN values (IID stripped)
}

// tnef lists the attachments of a TNEF stream as Embedded (Kind 't'),
// each inspected like a MIME leaf. When an attachment has both
// attAttachData and a data property (an embedded message carries a text
// placeholder in the first), both are inspected, as two entries.
func (w *walker) tnef(src readerAtSize) {
	if w.nest >= maxNest {
		w.res.addDefect(DefectLimitEmbedded)
		return
	}
	size := src.Size()
	var hdr [9]byte
	if _, err := src.ReadAt(hdr[:6], 0); err != nil || !bytes.Equal(hdr[:4], magicTNEF) {
		w.res.addDefect(DefectTNEFCorrupt)
		return
	}
	var atts []*tnefAttachment
	var cur *tnefAttachment
	for pos := int64(6); pos < size; {
		if _, err := src.ReadAt(hdr[:], pos); err != nil {
			w.tnefCorrupt()
			break
		}
		id := binary.LittleEndian.Uint32(hdr[1:]) & 0xFFFF
		n := int64(binary.LittleEndian.Uint32(hdr[5:]))
		off := pos + 9
		short := n > size-off
		if short {
			n = size - off
		}
		if id == attAttachRend || cur == nil && (id == attAttachData || id == attAttachTitle || id == attAttachment) {
			if len(atts) >= maxEmbedded {
				w.res.addDefect(DefectLimitEmbedded)
				break
			}
			cur = &tnefAttachment{}
			atts = append(atts, cur)
		}
		switch id {
		case attAttachData:
			if cur.data == nil {
				cur.data = &section{off, n}
			}
		case attAttachTitle:
			cur.title = string(bytes.TrimRight(readSection(src, off, min(n, mapiMaxName)), "\x00"))
		case attAttachment:
			long, objs := mapiProps(src, off, n)
			if long != "" {
				cur.long = long
			}
			cur.objs = append(cur.objs, objs...)
		}
		if short {
			w.tnefCorrupt()
			break
		}
		pos = off + n + 2 // data, checksum
	}
	for _, a := range atts {
		name := a.long
		if name == "" {
			name = a.title
		}
		if a.data != nil || len(a.objs) == 0 {
			var d section
			if a.data != nil {
				d = *a.data
			}
			w.tnefEmbed(src, name, d)
		}
		for _, o := range a.objs {
			w.tnefEmbed(src, name, o)
		}
	}
}

// tnefEmbed inspects one attachment's bytes as an embedded file.
func (w *walker) tnefEmbed(src io.ReaderAt, name string, s section) {
	opts := w.opts
	opts.Text, opts.Name, opts.Declared = false, name, ""
	ins := newNested(opts, w.nest+1)
	if s.n > 0 {
		io.Copy(ins, io.NewSectionReader(src, s.off, s.n))
	}
	w.res.Embedded = append(w.res.Embedded, Embedded{Kind: 't', Name: name, Result: ins.Close()})
}

func (w *walker) tnefCorrupt() {
	if !w.truncated {
		w.res.addDefect(DefectTNEFCorrupt)
	}
}

func readSection(r io.ReaderAt, off, n int64) []byte {
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	m, _ := r.ReadAt(b, off)
	return b[:m]
}

// mapiProps walks a MAPI property list ([MS-OXTNEF] 2.1.3.4) stored at
// off..off+n of r. It returns PR_ATTACH_LONG_FILENAME and the values of
// PR_ATTACH_DATA_OBJ (its 16-byte interface id stripped) and
// PR_ATTACH_DATA_BIN. A malformed list ends the walk with what was found.
func mapiProps(r io.ReaderAt, off, n int64) (long string, objs []section) {
	end := off + n
	p := off
	var buf [20]byte
	u32 := func() (uint32, bool) {
		if end-p < 4 {
			return 0, false
		}
		if _, err := r.ReadAt(buf[:4], p); err != nil {
			return 0, false
		}
		p += 4
		return binary.LittleEndian.Uint32(buf[:4]), true
	}
	count, ok := u32()
	if !ok {
		return
	}
	for i := uint32(0); i < count && p < end; i++ {
		tag, ok := u32()
		if !ok {
			return
		}
		typ, id := uint16(tag), uint16(tag>>16)
		if id >= 0x8000 { // named property: GUID, kind, then an id or a name
			if end-p < 20 {
				return
			}
			if _, err := r.ReadAt(buf[:20], p); err != nil {
				return
			}
			p += 20
			if binary.LittleEndian.Uint32(buf[16:]) == 0 {
				p += 4
			} else {
				l, ok := u32()
				if !ok {
					return
				}
				p += int64(pad4(int64(l)))
			}
		}
		multi := typ&0x1000 != 0
		base := typ &^ 0x1000
		var fixed int64
		switch base {
		case 0x0002, 0x0003, 0x0004, 0x000A, 0x000B:
			fixed = 4
		case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040:
			fixed = 8
		case 0x0048:
			fixed = 16
		case 0x001E, 0x001F, 0x0102, 0x000D:
		default:
			return
		}
		nvals := uint32(1)
		if multi || fixed == 0 {
			if nvals, ok = u32(); !ok {
				return
			}
		}
		if fixed > 0 {
			if int64(nvals) > (end-p)/fixed {
				return
			}
			p += int64(nvals) * fixed
			continue
		}
		for v := uint32(0); v < nvals; v++ {
			l32, ok := u32()
			if !ok {
				return
			}
			l := int64(l32)
			if l > end-p {
				return
			}
			switch {
			case id == prLongFilename && v == 0 && base == 0x001F:
				long = decodeUTF16(readSection(r, p, min(l, mapiMaxName)))
			case id == prLongFilename && v == 0 && base == 0x001E:
				long = string(bytes.TrimRight(readSection(r, p, min(l, mapiMaxName)), "\x00"))
			case id == prAttachDataObj && base == 0x000D && l > 16:
				objs = append(objs, section{p + 16, l - 16})
			case id == prAttachDataObj && base == 0x0102 && l > 0:
				objs = append(objs, section{p, l})
			}
			p += pad4(l)
		}
	}
	return
}

func pad4(n int64) int64 { return (n + 3) &^ 3 }

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
