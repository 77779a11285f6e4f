package inspect

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// zip lists a zip archive (and OOXML documents, which are zips).
func (w *walker) zip(src readerAtSize, depth int) {
	zr, err := zip.NewReader(src, src.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.corrupt()
		return
	}
	cd, base := zipCentral(src, w.opts.ArchiveEntries+1)
	if base > 0 {
		w.res.addDefect(DefectZipPrefix)
	}
	for idx, f := range zr.File {
		if ooxmlMacroName(f.Name) {
			w.res.Macros = true
		}
		if strings.EqualFold(f.Name, "[Content_Types].xml") && w.contentTypesMacro(f) {
			w.res.Macros = true
		}
		enc := f.Flags&1 != 0 || f.Method == 99 || hasExtra(f.Extra, 0x9901)
		e := Entry{Name: f.Name, Ext: extOf(f.Name), Size: int64(f.UncompressedSize64), Encrypted: enc, Depth: depth + 1}
		var local string
		if idx < len(cd) && cd[idx].name == f.Name {
			local = zipLocalName(src, base+cd[idx].offset)
		}
		ok := true
		switch {
		case enc || f.FileInfo().IsDir():
			ok = w.add(e)
		default:
			rc, err := f.Open()
			if err != nil {
				// Unknown method (or a corrupt header): listed, not sniffed.
				w.res.addDefect(DefectArchiveUnsupported)
				ok = w.add(e)
				break
			}
			var err2 error
			ok, err2 = w.member(&e, w.limited(rc))
			rc.Close()
			if err2 != nil {
				w.corrupt()
			}
		}
		if !ok {
			return
		}
		if local != "" && local != f.Name {
			// The central directory and the local header disagree: an
			// extractor reading either one sees a different name. List both.
			w.res.addDefect(DefectZipNameMismatch)
			e.Name, e.Ext = local, extOf(local)
			if !w.add(e) {
				return
			}
			if ooxmlMacroName(local) {
				w.res.Macros = true
			}
		}
	}
	if len(cd) == len(zr.File) {
		known := make(map[int64]bool, len(cd))
		for _, c := range cd {
			known[base+c.offset] = true
		}
		w.zipHidden(src, depth, known)
	}
}

// zipHidden walks the local file headers from the start of the archive, as
// streaming extractors do, and lists those the central directory does not
// reference (a zip concatenated after another one, entries left out of the
// directory): DefectZipHiddenEntry. The walk stops where an entry's size
// is only in a data descriptor.
func (w *walker) zipHidden(src readerAtSize, depth int, known map[int64]bool) {
	var h [30]byte
	pos := int64(0)
	for steps := 0; steps <= 2*w.opts.ArchiveEntries && !w.full; steps++ {
		if _, err := src.ReadAt(h[:], pos); err != nil || string(h[:4]) != "PK\x03\x04" {
			return
		}
		le := binary.LittleEndian
		flags, method := le.Uint16(h[6:]), le.Uint16(h[8:])
		csize, usize := int64(le.Uint32(h[18:])), int64(le.Uint32(h[22:]))
		nl, el := int64(le.Uint16(h[26:])), int64(le.Uint16(h[28:]))
		data := pos + 30 + nl + el
		if !known[pos] {
			name := string(readSection(src, pos+30, nl))
			e := Entry{Name: name, Ext: extOf(name), Size: usize, Depth: depth + 1, Encrypted: flags&1 != 0}
			w.res.addDefect(DefectZipHiddenEntry)
			if ooxmlMacroName(name) {
				w.res.Macros = true
			}
			var r io.Reader
			n := csize
			if flags&8 != 0 && n == 0 {
				n = src.Size() - data // size unknown: enough to sniff
			}
			switch {
			case e.Encrypted || n <= 0:
			case method == zip.Store:
				r = io.NewSectionReader(src, data, n)
			case method == zip.Deflate:
				fr := flate.NewReader(io.NewSectionReader(src, data, n))
				defer fr.Close()
				r = fr
			}
			if r == nil {
				if !w.add(e) {
					return
				}
			} else if ok, _ := w.member(&e, w.limited(r)); !ok {
				return
			}
		}
		if flags&8 != 0 && csize == 0 {
			return
		}
		next := data + csize
		if next <= pos || next > src.Size() {
			return
		}
		pos = next
		// A data descriptor may follow: skip its optional signature and fields.
		var sig [4]byte
		if _, err := src.ReadAt(sig[:], pos); err == nil && string(sig[:]) == "PK\x07\x08" {
			pos += 16
		} else if flags&8 != 0 {
			pos += 12
		}
	}
}

// ooxmlMacroName reports whether an OOXML member name is a VBA project or
// an Excel 4.0 macro sheet, in any case and any folder.
func ooxmlMacroName(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, `\`, "/"))
	return strings.HasSuffix(n, "vbaproject.bin") || strings.Contains(n, "macrosheets/") ||
		strings.HasSuffix(n, "vbadata.xml")
}

// contentTypesMacro reads (a bounded prefix of) [Content_Types].xml and
// looks for macro-enabled content types.
func (w *walker) contentTypesMacro(f *zip.File) bool {
	rc, err := f.Open()
	if err != nil {
		return false
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(w.limited(rc), 256<<10))
	b = bytes.ToLower(b)
	return bytes.Contains(b, []byte("macroenabled")) || bytes.Contains(b, []byte("vbaproject")) ||
		bytes.Contains(b, []byte("ms-excel.macrosheet")) || bytes.Contains(b, []byte("ms-excel.intlmacrosheet"))
}

// hasExtra reports whether a zip extra field block has a field with id
// (0x9901: WinZip AES encryption).
func hasExtra(extra []byte, id uint16) bool {
	for len(extra) >= 4 {
		tag := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		if tag == id {
			return true
		}
		if 4+n > len(extra) {
			return false
		}
		extra = extra[4+n:]
	}
	return false
}

type cdEntry struct {
	name   string
	offset int64 // local header offset, relative to base
}

// zipCentral reads up to max central directory records itself (archive/zip
// does not expose local header offsets) and returns them with the base
// offset (bytes prepended to the archive). On any inconsistency it returns
// what it has; the name comparison then just covers fewer entries.
func zipCentral(r io.ReaderAt, max int) ([]cdEntry, int64) {
	size := sizeOf(r)
	tailLen := min(size, 65535+22)
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && err != io.EOF {
		return nil, 0
	}
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < 22 {
		return nil, 0
	}
	eocd := tail[i:]
	endOff := size - tailLen + int64(i)
	count := int64(binary.LittleEndian.Uint16(eocd[10:]))
	cdSize := int64(binary.LittleEndian.Uint32(eocd[12:]))
	cdOff := int64(binary.LittleEndian.Uint32(eocd[16:]))
	if cdOff == 0xFFFFFFFF || cdSize == 0xFFFFFFFF || count == 0xFFFF {
		// ZIP64: the locator sits just before the EOCD.
		if i < 20 || string(tail[i-20:i-16]) != "PK\x06\x07" {
			return nil, 0
		}
		z64off := int64(binary.LittleEndian.Uint64(tail[i-20+8:]))
		var z64 [56]byte
		if z64off < 0 || z64off > size-56 {
			return nil, 0
		}
		if _, err := r.ReadAt(z64[:], z64off); err != nil || string(z64[:4]) != "PK\x06\x06" {
			return nil, 0
		}
		count = int64(binary.LittleEndian.Uint64(z64[32:]))
		cdSize = int64(binary.LittleEndian.Uint64(z64[40:]))
		cdOff = int64(binary.LittleEndian.Uint64(z64[48:]))
		endOff = z64off
	}
	base := endOff - cdSize - cdOff
	if base < 0 || cdSize < 0 || cdSize > size {
		base = 0
	}
	if cdOff+base < 0 || cdOff+base+cdSize > size {
		return nil, 0
	}
	cd := make([]byte, cdSize)
	if _, err := r.ReadAt(cd, cdOff+base); err != nil {
		return nil, 0
	}
	var out []cdEntry
	for len(cd) >= 46 && len(out) < max && int64(len(out)) < count {
		if string(cd[:4]) != "PK\x01\x02" {
			break
		}
		nl := int(binary.LittleEndian.Uint16(cd[28:]))
		el := int(binary.LittleEndian.Uint16(cd[30:]))
		cl := int(binary.LittleEndian.Uint16(cd[32:]))
		if 46+nl+el+cl > len(cd) {
			break
		}
		off := int64(binary.LittleEndian.Uint32(cd[42:]))
		if off == 0xFFFFFFFF {
			off = zip64Offset(cd[46+nl:46+nl+el], cd)
		}
		out = append(out, cdEntry{name: string(cd[46 : 46+nl]), offset: off})
		cd = cd[46+nl+el+cl:]
	}
	return out, base
}

// zip64Offset finds the local header offset in a ZIP64 extra field: it
// follows the sizes that are 0xFFFFFFFF in the central record.
func zip64Offset(extra, rec []byte) int64 {
	for len(extra) >= 4 {
		tag := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		if 4+n > len(extra) {
			return -1
		}
		if tag == 1 {
			f := extra[4 : 4+n]
			if binary.LittleEndian.Uint32(rec[24:]) == 0xFFFFFFFF {
				f = skip8(f)
			}
			if binary.LittleEndian.Uint32(rec[20:]) == 0xFFFFFFFF {
				f = skip8(f)
			}
			if len(f) >= 8 {
				return int64(binary.LittleEndian.Uint64(f))
			}
			return -1
		}
		extra = extra[4+n:]
	}
	return -1
}

func skip8(b []byte) []byte {
	if len(b) < 8 {
		return nil
	}
	return b[8:]
}

// zipLocalName reads the name in the local file header at off, "" if
// there is no valid header there.
func zipLocalName(r io.ReaderAt, off int64) string {
	var h [30]byte
	if off < 0 {
		return ""
	}
	if _, err := r.ReadAt(h[:], off); err != nil || string(h[:4]) != "PK\x03\x04" {
		return ""
	}
	nl := int(binary.LittleEndian.Uint16(h[26:]))
	name := make([]byte, nl)
	if _, err := r.ReadAt(name, off+30); err != nil {
		return ""
	}
	return string(name)
}

func sizeOf(r io.ReaderAt) int64 {
	if s, ok := r.(interface{ Size() int64 }); ok {
		return s.Size()
	}
	return 0
}
