package inspect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
)

// RTF: Word opens .rtf (and .doc files that are really RTF) and
// instantiates the OLE objects in \object groups; their bytes are the hex
// (or \bin) data of the \objdata destination, an OLE1 object
// ([MS-OLEDS] 2.2.4 ObjectHeader + EmbeddedObject): version, format id,
// class name, topic, item, native data. A "Package" object's native data
// is an OLE Package (olepkg.go); any other class's native data (often a
// compound file: a Word or Excel document with macros) is handed on as a
// file of its own. A linked object (format id 1) names its source in the
// topic: a remote share there is reported.
//
// The reader is a small state machine over the body (one pass, bounded by
// the body size); each \objdata is kept in memory up to rtfMaxObject.

const (
	rtfMaxObject  = 32 << 20
	rtfMaxObjects = 100
)

func (w *walker) rtf(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	br := bufio.NewReaderSize(io.NewSectionReader(src, 0, src.Size()), 64<<10)
	objects := 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			return
		}
		if c != '\\' {
			continue
		}
		word, _, _ := rtfControl(br)
		switch word {
		case "object", "objemb", "objlink", "objautlink", "objupdate", "objhtml", "objocx":
			out.add(ActiveRTFObject)
		case "objdata":
			out.add(ActiveRTFObject)
			if objects++; objects > rtfMaxObjects {
				w.res.addDefect(DefectLimitEmbedded)
				return
			}
			data, cut := rtfObjData(br)
			if cut {
				w.res.addDefect(DefectLimitEmbedded)
			}
			if !w.ole1(data, out, emb) {
				return
			}
		}
	}
}

// rtfControl reads a control word after its backslash: the letters, the
// optional numeric parameter and the delimiting space. A control symbol
// (\{, \', \*, ...) gives "" and is left to the caller but for its one
// character.
func rtfControl(br *bufio.Reader) (word string, param int64, hasParam bool) {
	var b []byte
	for len(b) < 32 {
		c, err := br.ReadByte()
		if err != nil {
			return string(b), 0, false
		}
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			b = append(b, c)
			continue
		}
		if len(b) == 0 {
			return "", 0, false // a control symbol: c consumed
		}
		br.UnreadByte()
		break
	}
	neg := false
	if c, err := br.ReadByte(); err == nil {
		if c == '-' {
			neg = true
		} else {
			br.UnreadByte()
		}
	}
	for i := 0; i < 11; i++ {
		c, err := br.ReadByte()
		if err != nil {
			break
		}
		if c < '0' || c > '9' {
			br.UnreadByte()
			break
		}
		param, hasParam = param*10+int64(c-'0'), true
	}
	if neg {
		param = -param
	}
	if c, err := br.ReadByte(); err == nil && c != ' ' {
		br.UnreadByte()
	}
	return string(b), param, hasParam
}

// rtfObjData reads the \objdata destination up to the end of its group:
// hex digit pairs, with white space, control words and nested groups
// skipped as Word skips them, and \binN raw bytes taken as they are.
func rtfObjData(br *bufio.Reader) (data []byte, cut bool) {
	depth := 0
	half := -1
	put := func(c byte) {
		if len(data) >= rtfMaxObject {
			cut = true
			return
		}
		data = append(data, c)
	}
	for {
		c, err := br.ReadByte()
		if err != nil {
			return
		}
		switch {
		case c == '{':
			depth++
		case c == '}':
			if depth == 0 {
				return
			}
			depth--
		case c == '\\':
			word, n, ok := rtfControl(br)
			if word == "bin" && ok && n > 0 {
				for i := int64(0); i < n; i++ {
					b, err := br.ReadByte()
					if err != nil {
						return
					}
					put(b)
				}
			}
		case depth == 0:
			if v := unhex(c); v >= 0 {
				if half < 0 {
					half = v
				} else {
					put(byte(half<<4 | v))
					half = -1
				}
			}
		}
	}
}

// ole1 reads an OLE1 object and hands on its content. false: stop.
func (w *walker) ole1(b []byte, out *carried, emb func(string, io.Reader, int64) bool) bool {
	le := binary.LittleEndian
	p := b
	u32 := func() (uint32, bool) {
		if len(p) < 4 {
			return 0, false
		}
		v := le.Uint32(p)
		p = p[4:]
		return v, true
	}
	lstr := func() (string, bool) {
		n, ok := u32()
		if !ok || int64(n) > int64(len(p)) {
			return "", false
		}
		s := string(bytes.TrimRight(p[:n], "\x00"))
		p = p[n:]
		return s, true
	}
	_, ok1 := u32()
	format, ok2 := u32()
	class, ok3 := lstr()
	if !ok1 || !ok2 || !ok3 {
		if len(b) > 0 {
			// Not an OLE1 header: the bytes are still a file.
			return emb("", bytes.NewReader(b), int64(len(b)))
		}
		return true
	}
	topic, _ := lstr()
	if format == 1 { // linked object: the source is in the topic
		urlFacts(topic, out)
		return true
	}
	lstr() // item
	if len(p) < 4 {
		return true
	}
	if class == "Package" {
		out.add(ActiveOLEPackage)
		name, data, _ := parseOLEPackage(p)
		return emb(name, bytes.NewReader(data), int64(len(data)))
	}
	n := int64(le.Uint32(p))
	p = p[4:]
	if n < int64(len(p)) {
		p = p[:n]
	}
	return emb("", bytes.NewReader(p), int64(len(p)))
}
