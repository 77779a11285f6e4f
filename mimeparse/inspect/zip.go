package inspect

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// zip lists a zip archive (and OOXML documents, which are zips).
// methodDeflate64 is zip compression method 9 (APPNOTE.TXT 4.4.5).
const methodDeflate64 = 9

func (w *walker) zip(src readerAtSize, depth int) {
	// The directory is read here first, as far as the entry limit, and
	// archive/zip is handed a view that holds only those records: it would
	// otherwise read every record (700,000 of them in a 47 MB zip, 262 MB
	// of File structs) before the limit applies.
	d := zipCentral(src, w.opts.ArchiveEntries+1)
	if !d.ok {
		w.corrupt()
		return
	}
	cd, base := d.entries, d.base
	cut := false
	if len(cd) > w.opts.ArchiveEntries || d.count > int64(w.opts.ArchiveEntries) {
		w.res.addDefect(DefectLimitArchiveEntries)
		cut = true
		cd = cd[:min(len(cd), w.opts.ArchiveEntries)]
	} else if int64(len(cd)) < d.count {
		// Fewer records than the end record says: archive/zip would refuse
		// the archive; what could be read is listed.
		w.corrupt()
	}
	v := d.view(src, len(cd))
	zr, err := zip.NewReader(v, v.Size())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.corrupt()
		return
	}
	if base > 0 {
		w.res.addDefect(DefectZipPrefix)
	}
	if depth == 0 {
		for _, f := range zr.File {
			if strings.EqualFold(f.Name, "[Content_Types].xml") {
				w.ooxml = true
			}
		}
	}
	for idx, f := range zr.File {
		if w.ooxml && depth == 0 && strings.HasSuffix(strings.ToLower(f.Name), ".rels") {
			w.res.addActive(w.ooxmlRels(f))
		}
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
			if f.Method == methodDeflate64 {
				// Deflate64 (what Windows Explorer picks for big files) has
				// no decoder here: listed, content not inspected.
				w.res.addDefect(DefectLimitDeflate64)
				ok = w.add(e)
				break
			}
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
	if len(cd) == len(zr.File) && !cut {
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
	end    int64 // where the record ends, from the start of the directory
}

// zipDir is the central directory as zipCentral read it.
type zipDir struct {
	entries []cdEntry
	base    int64 // bytes prepended to the archive
	start   int64 // offset of the directory in the file
	count   int64 // entries the end record claims
	ok      bool  // an end record and a directory inside the file were found
}

// zipCentral reads up to max central directory records itself
// (archive/zip does not expose local header offsets, and would read every
// record before the entry limit applies) from the end record, or the
// ZIP64 end record, found as archive/zip finds it. On an inconsistency in
// the records it returns those before it.
func zipCentral(r io.ReaderAt, max int) zipDir {
	size := sizeOf(r)
	tailLen := min(size, 65535+22)
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil && err != io.EOF {
		return zipDir{}
	}
	i := bytes.LastIndex(tail, []byte("PK\x05\x06"))
	if i < 0 || len(tail)-i < 22 {
		return zipDir{}
	}
	eocd := tail[i:]
	endOff := size - tailLen + int64(i)
	count := int64(binary.LittleEndian.Uint16(eocd[10:]))
	cdSize := int64(binary.LittleEndian.Uint32(eocd[12:]))
	cdOff := int64(binary.LittleEndian.Uint32(eocd[16:]))
	if i >= 20 && string(tail[i-20:i-16]) == "PK\x06\x07" {
		// ZIP64: the locator sits just before the end record, and
		// archive/zip follows it whatever the end record says.
		z64off := int64(binary.LittleEndian.Uint64(tail[i-20+8:]))
		var z64 [56]byte
		if z64off < 0 || z64off > size-56 {
			return zipDir{}
		}
		if _, err := r.ReadAt(z64[:], z64off); err != nil || string(z64[:4]) != "PK\x06\x06" {
			return zipDir{}
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
	if cdOff < 0 || cdOff+base < 0 || cdOff+base > size || count < 0 {
		return zipDir{}
	}
	d := zipDir{base: base, start: cdOff + base, count: count, ok: true}
	// Records are read one by one, as far as the entries wanted: a
	// directory of a million records costs max of them.
	br := bufio.NewReaderSize(io.NewSectionReader(r, d.start, size-d.start), 4096)
	var rec [46]byte
	pos := int64(0)
	for len(d.entries) < max && int64(len(d.entries)) < count {
		if _, err := io.ReadFull(br, rec[:]); err != nil || string(rec[:4]) != "PK\x01\x02" {
			break
		}
		nl := int(binary.LittleEndian.Uint16(rec[28:]))
		el := int(binary.LittleEndian.Uint16(rec[30:]))
		cl := int(binary.LittleEndian.Uint16(rec[32:]))
		rest := make([]byte, nl+el)
		if _, err := io.ReadFull(br, rest); err != nil {
			break
		}
		if _, err := br.Discard(cl); err != nil {
			break
		}
		off := int64(binary.LittleEndian.Uint32(rec[42:]))
		if off == 0xFFFFFFFF {
			off = zip64Offset(rest[nl:], rec[:])
		}
		pos += int64(46 + nl + el + cl)
		d.entries = append(d.entries, cdEntry{name: string(rest[:nl]), offset: off, end: pos})
	}
	return d
}

// view returns the archive as archive/zip should see it: the bytes up to
// the end of the first n records read, then a ZIP64 end record (with its
// locator and end record) saying n entries. archive/zip then reads exactly
// those records, however many the file holds.
func (d zipDir) view(src readerAtSize, n int) readerAtSize {
	var dirLen int64
	if n > 0 {
		dirLen = d.entries[n-1].end
	}
	cut := d.start + dirLen
	le := binary.LittleEndian
	t := []byte("PK\x06\x06")
	t = le.AppendUint64(t, 44)
	t = append(t, 45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	t = le.AppendUint64(t, uint64(n))
	t = le.AppendUint64(t, uint64(n))
	t = le.AppendUint64(t, uint64(dirLen))
	t = le.AppendUint64(t, uint64(d.start-d.base))
	t = append(t, "PK\x06\x07\x00\x00\x00\x00"...)
	t = le.AppendUint64(t, uint64(cut))
	t = append(t, 1, 0, 0, 0)
	t = append(t, "PK\x05\x06\x00\x00\x00\x00"...)   // disk numbers
	t = append(t, bytes.Repeat([]byte{0xff}, 12)...) // counts, size, offset: in the ZIP64 record
	t = append(t, 0, 0)                              // no comment
	return &zipView{src: src, cut: cut, tail: t}
}

// zipView is src cut at cut, followed by tail.
type zipView struct {
	src  io.ReaderAt
	cut  int64
	tail []byte
}

func (v *zipView) Size() int64 { return v.cut + int64(len(v.tail)) }

func (v *zipView) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("zip view: negative offset")
	}
	n := 0
	if off < v.cut {
		k := int(min(int64(len(p)), v.cut-off))
		m, err := v.src.ReadAt(p[:k], off)
		n += m
		if err != nil && !(err == io.EOF && m == k) {
			return n, err
		}
		off += int64(k)
	}
	if n < len(p) {
		if t := off - v.cut; t < int64(len(v.tail)) {
			n += copy(p[n:], v.tail[t:])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
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
