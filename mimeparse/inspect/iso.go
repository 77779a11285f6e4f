package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"unicode/utf16"
)

// ISO 9660 disk images (.iso, .img): Windows mounts them with a double
// click, and they have carried executables and shortcuts past filters that
// do not look inside. Their signature sits at byte 32769, past the sniffed
// head, so a body is spilled as a possible image when its first 3 KiB are
// all zero (the system area) or its name or type says disk image; it is
// read only if the signature is really there.
//
// Like a FAT image (fat.go), an image that is the attachment itself
// carries its files as leaves of their own (Embedded, Kind 'e': "2.e1",
// see carrier.go), each read from its extent in the image, inspected like
// any attachment and charged to the decompression budget; an image inside
// an archive lists its files as archive entries one level deeper.

const (
	isoMaxDirs  = 4096 // directories visited per image
	isoMaxDepth = 16
)

// maybeISO reports whether a body could be a disk image.
func maybeISO(head []byte, o *Options) bool {
	if len(head) == headMax {
		zero := true
		for _, c := range head {
			if c != 0 {
				zero = false
				break
			}
		}
		if zero {
			return true
		}
	}
	switch extOf(o.Name) {
	case "iso", "img", "udf":
		return true
	}
	return strings.Contains(o.Declared, "iso9660") || o.Declared == "application/x-cd-image"
}

// iso reads an ISO 9660 image: the primary tree and the Joliet tree (the
// names Windows shows), both, when present; depth 0 is the attachment
// itself (its files become Embedded leaves), deeper is inside an archive
// (its files become entries). A UDF volume descriptor means
// Windows may show a tree that was not listed: defect archive-unsupported.
func (w *walker) iso(src readerAtSize, depth int) {
	var vd [2048]byte
	var roots [][]byte // root directory records
	var joliet []bool
	found := false
	// The descriptors from sector 16 on; UDF's follow the ISO terminator.
	for s := int64(16); s < 64; s++ {
		if _, err := src.ReadAt(vd[:], s*2048); err != nil {
			break
		}
		id := string(vd[1:6])
		switch id {
		case "CD001":
			found = true
			switch vd[0] {
			case 1:
				roots, joliet = append(roots, append([]byte(nil), vd[156:190]...)), append(joliet, false)
			case 2:
				if vd[88] == '%' && vd[89] == '/' && (vd[90] == '@' || vd[90] == 'C' || vd[90] == 'E') {
					roots, joliet = append(roots, append([]byte(nil), vd[156:190]...)), append(joliet, true)
				}
			}
		case "BEA01", "NSR02", "NSR03", "TEA01":
			if id != "BEA01" && id != "TEA01" {
				w.res.addDefect(DefectArchiveUnsupported)
			}
		}
	}
	if !found {
		return // not an image after all
	}
	if len(roots) == 0 {
		w.corrupt()
		return
	}
	seen := map[string]bool{}
	for i, root := range roots {
		if !w.isoDir(src, root, "", joliet[i], depth, 0, seen, new(int)) {
			return
		}
	}
}

// isoDir lists the directory whose record is rec, recursively. It returns
// false when the entry limit is reached.
func (w *walker) isoDir(src readerAtSize, rec []byte, prefix string, joliet bool, depth, level int, seen map[string]bool, dirs *int) bool {
	le := binary.LittleEndian
	extent, size := int64(le.Uint32(rec[2:])), int64(le.Uint32(rec[10:]))
	if *dirs >= isoMaxDirs || level > isoMaxDepth || size > 1<<24 || extent*2048+size > src.Size() {
		if *dirs >= isoMaxDirs || level > isoMaxDepth {
			w.res.addDefect(DefectLimitArchiveEntries)
		} else {
			w.corrupt()
		}
		return *dirs < isoMaxDirs
	}
	*dirs++
	data := make([]byte, size)
	if _, err := src.ReadAt(data, extent*2048); err != nil && err != io.EOF {
		w.corrupt()
		return true
	}
	for p := 0; p < len(data); {
		n := int(data[p])
		if n == 0 { // records do not cross sectors: skip to the next one
			p = (p/2048 + 1) * 2048
			continue
		}
		if n < 34 || p+n > len(data) {
			w.corrupt()
			return true
		}
		r := data[p : p+n]
		p += n
		nl := int(r[32])
		if 33+nl > len(r) {
			w.corrupt()
			return true
		}
		raw := r[33 : 33+nl]
		if nl == 1 && (raw[0] == 0 || raw[0] == 1) { // . and ..
			continue
		}
		name := isoName(raw, joliet)
		full := prefix + name
		if r[25]&2 != 0 {
			if !w.isoDir(src, r, full+"/", joliet, depth, level+1, seen, dirs) {
				return false
			}
			continue
		}
		if seen[full] {
			continue // the same name in the other tree
		}
		seen[full] = true
		fext, fsize := int64(le.Uint32(r[2:])), int64(le.Uint32(r[10:]))
		if depth == 0 {
			// The attachment itself: the file is a leaf. An extent past the
			// end (a cut image) still gives the leaf its name.
			var body io.Reader = bytes.NewReader(nil)
			if fext*2048 <= src.Size() {
				body = w.limited(io.NewSectionReader(src, fext*2048, fsize))
			}
			if !w.carry(full, body, fsize, depth, false) {
				return false
			}
			continue
		}
		e := Entry{Name: full, Ext: extOf(full), Size: fsize, Depth: depth + 1}
		if fext*2048 > src.Size() {
			if !w.add(e) {
				return false
			}
			continue
		}
		ok, _ := w.member(&e, w.limited(io.NewSectionReader(src, fext*2048, fsize)))
		if !ok {
			return false
		}
	}
	return true
}

// isoName decodes a directory record's file identifier: UCS-2 big endian
// for Joliet, d-characters otherwise; the ";1" version suffix is dropped.
func isoName(raw []byte, joliet bool) string {
	var s string
	if joliet {
		u := make([]uint16, 0, len(raw)/2)
		for i := 0; i+1 < len(raw); i += 2 {
			u = append(u, binary.BigEndian.Uint16(raw[i:]))
		}
		s = string(utf16.Decode(u))
	} else {
		s = string(raw)
	}
	if i := strings.LastIndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	if !joliet {
		s = strings.TrimSuffix(s, ".")
	}
	return s
}
