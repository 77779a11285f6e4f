package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
)

// OneNote sections (.one, [MS-ONESTORE]) keep each embedded file (the
// "double click to view" lure's payload) in a FileDataStoreObject: a GUID
// header, a 64-bit length, 12 reserved bytes, then the file's bytes. The
// reader looks for that header over the body (one pass, chunked) and
// hands on each file; the names OneNote shows live in property sets that
// are not read here, so the files are named by their content alone.

// guidFileDataStore is {BDE316E7-2665-4511-A4C4-8D4D0B7A9EAC} as stored.
var guidFileDataStore = []byte{0xE7, 0x16, 0xE3, 0xBD, 0x65, 0x26, 0x11, 0x45, 0xA4, 0xC4, 0x8D, 0x4D, 0x0B, 0x7A, 0x9E, 0xAC}

func (w *walker) oneNote(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	size := src.Size()
	pb := getCarrierBuf()
	defer putCarrierBuf(pb)
	buf := (*pb)[:pdfChunk+64]
	found := 0
	for off := int64(0); off < size; off += pdfChunk {
		n, _ := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		b := buf[:n]
		for i := 0; i < min(n, pdfChunk); {
			j := bytes.Index(b[i:], guidFileDataStore)
			if j < 0 || i+j >= min(n, pdfChunk) {
				break
			}
			pos := off + int64(i+j)
			i += j + 1
			hdr := window(src, pos+16, 8)
			if len(hdr) < 8 {
				w.res.addDefect(DefectCarrierCorrupt)
				return
			}
			l := int64(binary.LittleEndian.Uint64(hdr))
			data := pos + 36
			if l < 0 || l > size-data {
				w.res.addDefect(DefectCarrierCorrupt)
				l = max(0, size-data)
			}
			out.add(ActiveOneNoteEmbedded)
			if found++; found > maxEmbedded {
				w.res.addDefect(DefectLimitEmbedded)
				return
			}
			if !emb("", io.NewSectionReader(src, data, l), l) {
				return
			}
		}
	}
}
