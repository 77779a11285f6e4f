package inspect

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// OLE Package objects ("Packager Shell Object"): the way a document wraps
// any file (an .exe, a .js, a .lnk) as an icon that runs it on a double
// click. The same bytes appear as the \x01Ole10Native stream of an OLE
// compound file (OOXML word/embeddings/oleObject1.bin) and as the native
// data of an OLE1 object in RTF \objdata ([MS-OLEDS] 2.2.4 and the
// Packager format):
//
//	u32 size | u16 type (2) | label\0 | source path\0 | u32 (0x00030000) |
//	u32 n | temp path (n bytes) | u32 n | data (n bytes) | ...
//
// parseOLEPackage returns the file's name and bytes. A stream that is not
// in that layout is returned whole after its size (ok false): still a file
// to sniff.
func parseOLEPackage(b []byte) (name string, data []byte, ok bool) {
	if len(b) < 6 {
		return "", nil, false
	}
	total := int64(binary.LittleEndian.Uint32(b))
	body := b[4:]
	if total < int64(len(body)) {
		body = body[:total]
	}
	raw := body
	if len(body) < 2 || binary.LittleEndian.Uint16(body) != 2 {
		return "", raw, false
	}
	p := body[2:]
	cstr := func() (string, bool) {
		i := bytes.IndexByte(p, 0)
		if i < 0 || i > 4096 {
			return "", false
		}
		s := string(p[:i])
		p = p[i+1:]
		return s, true
	}
	label, ok1 := cstr()
	src, ok2 := cstr()
	if !ok1 || !ok2 || len(p) < 8 {
		return "", raw, false
	}
	p = p[4:]
	n := int64(binary.LittleEndian.Uint32(p))
	p = p[4:]
	if n > int64(len(p)) {
		return "", raw, false
	}
	tmp := strings.TrimRight(string(p[:n]), "\x00")
	p = p[n:]
	if len(p) < 4 {
		return "", raw, false
	}
	n = int64(binary.LittleEndian.Uint32(p))
	p = p[4:]
	if n > int64(len(p)) {
		n = int64(len(p)) // cut short: what is there is still sniffed
	}
	for _, s := range []string{label, baseName(src), baseName(tmp)} {
		if s != "" {
			name = s
			break
		}
	}
	return name, p[:n], true
}

func baseName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		return s[i+1:]
	}
	return s
}

// olePackage hands on the file inside an Ole10Native stream.
func (w *walker) olePackage(f cfbFacts, depth int, inArchive bool) {
	if f.ole10 == nil {
		return
	}
	if f.ole10Cut {
		w.res.addDefect(DefectLimitEmbedded)
	}
	name, data, _ := parseOLEPackage(f.ole10)
	w.carry(name, bytes.NewReader(data), int64(len(data)), depth, inArchive)
}
