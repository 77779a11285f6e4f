package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
)

// cab lists a Microsoft Cabinet ([MS-CAB]) from its CFFILE records: names
// and sizes. Member content (MSZIP, Quantum, LZX) is not decompressed, so
// entries have no DetectedType and Executable stays false: policies should
// judge cab members by Ext. Multi-cabinet sets are flagged unsupported.
func (w *walker) cab(src readerAtSize, depth int) {
	var h [36]byte
	if _, err := src.ReadAt(h[:], 0); err != nil {
		w.corrupt()
		return
	}
	le := binary.LittleEndian
	coffFiles := int64(le.Uint32(h[16:]))
	nFiles := int(le.Uint16(h[28:]))
	if flags := le.Uint16(h[30:]); flags&3 != 0 {
		// continues from or into another cabinet: only part of the set is here
		w.res.addDefect(DefectArchiveUnsupported)
	}
	pos := coffFiles
	var rec [16 + 256]byte
	for i := 0; i < nFiles; i++ {
		n, err := src.ReadAt(rec[:], pos)
		if n < 17 || err != nil && err != io.EOF {
			w.corrupt()
			return
		}
		nameEnd := bytes.IndexByte(rec[16:n], 0)
		if nameEnd < 0 {
			w.corrupt()
			return
		}
		name := string(rec[16 : 16+nameEnd])
		e := Entry{Name: name, Ext: extOf(name), Size: int64(le.Uint32(rec[0:])), Depth: depth + 1}
		if !w.add(e) {
			return
		}
		pos += 16 + int64(nameEnd) + 1
	}
}
