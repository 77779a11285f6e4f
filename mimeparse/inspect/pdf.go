package inspect

import (
	"bytes"
	"compress/zlib"
	"encoding/ascii85"
	"io"
	"regexp"
	"sort"
	"strconv"
	"unicode/utf16"
)

// PDF: a bounded scan by hand, not a PDF library (the one Go PDF library
// the module proxy serves here is not a stable release, and a full object
// parser is far more than these facts need). The body is read once in
// chunks; every name token (with #xx escapes decoded, as readers do) is
// looked at:
//
//   - /JavaScript, /JS: pdf-javascript; /OpenAction, /AA: pdf-openaction;
//     /Launch: pdf-launch; /URI (...) with a search: or remote file target:
//     search-uri, remote-share.
//   - /EmbeddedFile: the stream of that object is decoded (FlateDecode,
//     ASCIIHexDecode, ASCII85Decode, within the budget) and handed on as
//     an embedded file, named by the file specification whose /EF points
//     at it.
//   - /ObjStm: object streams (PDF 1.5) can hide the action dictionaries;
//     each is decoded (within the budget) and its names looked at too.
//
// A stream with another filter is not decoded: defect
// pdf-unsupported-filter.

const (
	pdfChunk   = 1 << 20
	pdfOverlap = 512 // longer than any name or dictionary prefix matched
	pdfDictWin = 4096
	pdfMaxObj  = 1000 // embedded files and object streams per PDF
)

type pdfScan struct {
	embedded []int64        // positions of /EmbeddedFile names
	objStm   []int64        // positions of /ObjStm names
	names    map[int]string // object number of an embedded stream -> file name
}

func (w *walker) pdf(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	s := &pdfScan{names: map[int]string{}}
	size := src.Size()
	pb := getCarrierBuf()
	defer putCarrierBuf(pb)
	buf := (*pb)[:pdfChunk+pdfOverlap]
	for off := int64(0); off < size; off += pdfChunk {
		n, _ := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		b := buf[:n]
		limit := min(n, pdfChunk)
		if off+int64(n) >= size {
			limit = n
		}
		s.scanNames(b, 0, limit, off, out, true)
	}
	w.pdfFinish(src, s, out, emb)
}

// pdfFinish decodes the object streams and the embedded files found by
// the name scan.
func (w *walker) pdfFinish(src readerAtSize, s *pdfScan, out *carried, emb func(string, io.Reader, int64) bool) {
	for i, pos := range s.objStm {
		if i >= pdfMaxObj {
			w.res.addDefect(DefectLimitEmbedded)
			break
		}
		r, _, ok := w.pdfStream(src, pos)
		if !ok {
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(r, 16<<20))
		s.scanNames(b, 0, len(b), -1, out, false)
	}
	for i, pos := range s.embedded {
		if i >= pdfMaxObj {
			w.res.addDefect(DefectLimitEmbedded)
			break
		}
		r, num, ok := w.pdfStream(src, pos)
		if !ok {
			continue
		}
		if !emb(s.names[num], r, -1) {
			return
		}
	}
}

// scanNames looks at the name tokens starting in b[from:limit]. off is
// b's offset in the body (-1: b is a decoded object stream, and positions
// are not in the body).
func (s *pdfScan) scanNames(b []byte, from, limit int, off int64, out *carried, top bool) {
	for i := from; i < limit; {
		j := bytes.IndexByte(b[i:limit], '/')
		if j < 0 {
			return
		}
		i += j + 1
		if i < len(b) && !pdfNameFirst[b[i]] {
			continue // no name looked for starts so: the next '/' is past this name anyway
		}
		name, n := pdfName(b[i:])
		end := i + n
		switch string(name) {
		case "JavaScript", "JS":
			out.add(ActivePDFJavaScript)
		case "OpenAction", "AA":
			out.add(ActivePDFOpenAction)
		case "Launch":
			out.add(ActivePDFLaunch)
		case "URI", "F", "UF":
			if str, ok := pdfString(b[end:min(len(b), end+2048)]); ok {
				urlFacts(str, out)
			}
		case "EmbeddedFile":
			if top {
				s.embedded = append(s.embedded, off+int64(i-1))
			}
		case "ObjStm":
			if top {
				s.objStm = append(s.objStm, off+int64(i-1))
			}
		case "EF":
			s.fileSpec(b, i-1)
		}
		i = end
	}
}

// pdfNameFirst holds the first bytes of the names scanNames looks for,
// and '#' (an escape can spell any of them). A PDF's stream data is mostly
// binary: most of its '/' bytes start no name worth reading.
var pdfNameFirst = func() (t [256]bool) {
	for _, c := range "JOALUFE#" {
		t[c] = true
	}
	return
}()

var (
	pdfEFRef   = regexp.MustCompile(`^/EF\s*<<[^>]*?/(?:UF|F)\s+(\d+)\s+\d+\s+R`)
	pdfObjHdr  = regexp.MustCompile(`(\d+)\s+\d+\s+obj\b`)
	pdfLength  = regexp.MustCompile(`/Length\s+(\d+)(\s+\d+\s+R)?`)
	pdfFilters = regexp.MustCompile(`/Filter\s*(\[[^\]]*\]|/[^\s/\[\]<>()]+)`)
	pdfFName   = regexp.MustCompile(`/(?:UF|F)\s*\(`)
)

// fileSpec reads a file specification's /EF << /F n 0 R >> at b[at:]
// and its name (/UF or /F string) nearby.
func (s *pdfScan) fileSpec(b []byte, at int) {
	m := pdfEFRef.FindSubmatch(b[at:min(len(b), at+512)])
	if m == nil {
		return
	}
	num, err := strconv.Atoi(string(m[1]))
	if err != nil || s.names[num] != "" {
		return
	}
	lo := max(0, at-1024)
	win := b[lo:min(len(b), at+1024)]
	best := ""
	for _, loc := range pdfFName.FindAllIndex(win, 8) {
		if str, ok := pdfString(win[loc[1]-1:]); ok && str != "" {
			best = str
			if bytes.HasPrefix(win[loc[0]:], []byte("/UF")) {
				break
			}
		}
	}
	if len(s.names) < pdfMaxObj {
		s.names[num] = best
	}
}

// pdfName reads a name token (after its '/') and decodes #xx escapes; the
// result aliases b when there are none.
func pdfName(b []byte) ([]byte, int) {
	i := 0
	esc := false
	for i < len(b) && i < 128 {
		c := b[i]
		if c <= ' ' || c == '/' || c == '[' || c == ']' || c == '<' || c == '>' || c == '(' || c == ')' || c == '{' || c == '}' || c == '%' {
			break
		}
		esc = esc || c == '#'
		i++
	}
	if !esc {
		return b[:i], i
	}
	out := make([]byte, 0, i)
	for k := 0; k < i; k++ {
		if b[k] == '#' && k+2 < i+1 && k+2 < len(b) {
			if hi, lo := unhex(b[k+1]), unhex(b[k+2]); hi >= 0 && lo >= 0 {
				out = append(out, byte(hi<<4|lo))
				k += 2
				continue
			}
		}
		out = append(out, b[k])
	}
	return out, i
}

// pdfString reads a literal string "(...)" (after optional white space),
// with escapes and nesting, UTF-16BE when it has a byte order mark.
func pdfString(b []byte) (string, bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 || b[0] != '(' {
		return "", false
	}
	var out []byte
	depth := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b):
			i++
			switch e := b[i]; e {
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case '\r', '\n':
			default:
				if e >= '0' && e <= '7' {
					v := 0
					k := 0
					for ; k < 3 && i+k < len(b) && b[i+k] >= '0' && b[i+k] <= '7'; k++ {
						v = v*8 + int(b[i+k]-'0')
					}
					out = append(out, byte(v))
					i += k - 1
				} else {
					out = append(out, e)
				}
			}
			continue
		case c == '(':
			depth++
			if depth == 1 {
				continue
			}
		case c == ')':
			depth--
			if depth == 0 {
				return pdfText(out), true
			}
		}
		out = append(out, c)
	}
	return pdfText(out), true
}

func pdfText(b []byte) string {
	if len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF {
		u := make([]uint16, 0, len(b)/2)
		for i := 2; i+1 < len(b); i += 2 {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		}
		return string(utf16.Decode(u))
	}
	return string(b)
}

// pdfStreamer reads a PDF body as it is written, so that a PDF without
// embedded files or object streams (nearly all of them) is never kept:
// its names are scanned in passing, with pdfLook bytes of context either
// side. At the first /EmbeddedFile or /ObjStm the body is kept from
// pdfDictWin bytes before it on (memSpill, within Options.Spill): every
// stream read later lies after its dictionary.
type pdfStreamer struct {
	scan    pdfScan
	out     carried
	pb      *[]byte
	buf     []byte // body bytes from bufOff on
	bufOff  int64
	scanned int64 // names starting before this body offset were looked at
	spill   *memSpill
	base    int64 // body offset of the spill's first byte
	opts    *Options
}

const pdfLook = 4096 // past the longest look-ahead of scanNames (a 2 KiB string, a 1 KiB file spec window)

func newPDFStreamer(o *Options) *pdfStreamer {
	p := &pdfStreamer{scan: pdfScan{names: map[int]string{}}, opts: o, pb: getCarrierBuf()}
	p.buf = (*p.pb)[:0]
	return p
}

func (p *pdfStreamer) write(b []byte) {
	if p.spill != nil {
		p.spill.write(b)
	}
	p.buf = append(p.buf, b...)
	p.scanTo(len(p.buf) - pdfLook)
	if len(p.buf) > carrierMem/2 {
		if cut := p.scanned - pdfDictWin - pdfLook - p.bufOff; cut > 0 {
			p.buf = append(p.buf[:0], p.buf[cut:]...)
			p.bufOff += cut
		}
	}
}

func (p *pdfStreamer) scanTo(limit int) {
	from := int(p.scanned - p.bufOff)
	if limit <= from {
		return
	}
	ne, no := len(p.scan.embedded), len(p.scan.objStm)
	p.scan.scanNames(p.buf, from, limit, p.bufOff, &p.out, true)
	p.scanned = p.bufOff + int64(limit)
	if p.spill == nil && (len(p.scan.embedded) > ne || len(p.scan.objStm) > no) {
		first := p.scanned
		if len(p.scan.embedded) > ne {
			first = p.scan.embedded[ne]
		}
		if len(p.scan.objStm) > no {
			first = min(first, p.scan.objStm[no])
		}
		p.base = max(p.bufOff, first-pdfDictWin)
		p.spill = &memSpill{max: p.opts.Spill, dir: p.opts.SpillDir}
		p.spill.write(p.buf[p.base-p.bufOff:])
	}
}

// finish scans the rest and reads what the scan found.
func (w *walker) pdfStreamed(p *pdfStreamer) (active []string) {
	defer func() {
		if carrierRecover && recover() != nil {
			w.res.addDefect(DefectCarrierCorrupt)
		}
	}()
	defer p.release()
	p.scanTo(len(p.buf))
	if p.spill != nil {
		src, err := p.spill.readerAt()
		if err != nil {
			w.res.addDefect(DefectSpillFailed)
			return p.out.active
		}
		if p.spill.overflow {
			w.res.addDefect(DefectLimitInspectSpill)
			w.truncated = true
		}
		w.pdfFinish(offsetReader{src, p.base}, &p.scan, &p.out, func(name string, r io.Reader, size int64) bool {
			return w.carry(name, r, size, 0, false)
		})
	}
	sort.Strings(p.out.active)
	return p.out.active
}

func (p *pdfStreamer) release() {
	if p.spill != nil {
		p.spill.remove()
	}
	if p.pb != nil {
		putCarrierBuf(p.pb)
		p.pb, p.buf = nil, nil
	}
}

// offsetReader reads a body kept from offset base on, by body offsets.
type offsetReader struct {
	r    readerAtSize
	base int64
}

func (o offsetReader) ReadAt(b []byte, off int64) (int, error) {
	if off < o.base {
		return 0, io.EOF
	}
	return o.r.ReadAt(b, off-o.base)
}

func (o offsetReader) Size() int64 { return o.base + o.r.Size() }

// pdfStream finds the stream of the object whose dictionary holds the name
// at pos, and returns its decoded bytes as a budgeted reader, with the
// object's number.
func (w *walker) pdfStream(src readerAtSize, pos int64) (io.Reader, int, bool) {
	lo := max(0, pos-pdfDictWin)
	win := window(src, lo, pos-lo+pdfDictWin)
	at := int(pos - lo)
	if at > len(win) {
		return nil, 0, false
	}
	num := -1
	dictStart := 0
	if hdrs := pdfObjHdr.FindAllSubmatchIndex(win[:at], -1); len(hdrs) > 0 {
		h := hdrs[len(hdrs)-1]
		num, _ = strconv.Atoi(string(win[h[2]:h[3]]))
		dictStart = h[1]
	}
	rest := win[at:]
	k := pdfKeyword(rest, "stream")
	if k < 0 {
		return nil, 0, false
	}
	dict := win[dictStart : at+k]
	data := pos + int64(k) + 6
	// The keyword is followed by CRLF or LF (a lone CR in sloppy writers).
	if nl := window(src, data, 2); len(nl) > 0 {
		switch {
		case bytes.HasPrefix(nl, []byte("\r\n")):
			data += 2
		case nl[0] == '\n' || nl[0] == '\r':
			data++
		}
	}
	length := int64(-1)
	if m := pdfLength.FindSubmatch(dict); m != nil && len(m[2]) == 0 {
		length, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if length < 0 || data+length > src.Size() {
		length = w.pdfFindEnd(src, data)
	}
	var r io.Reader = io.NewSectionReader(src, data, max(length, 0))
	var filters []string
	if m := pdfFilters.FindSubmatch(dict); m != nil {
		for _, f := range bytes.Fields(bytes.Trim(m[1], "[]")) {
			for _, part := range bytes.Split(f, []byte("/")) {
				if len(part) > 0 {
					filters = append(filters, string(part))
				}
			}
		}
	}
	for _, f := range filters {
		switch f {
		case "FlateDecode", "Fl":
			zr, err := zlib.NewReader(r)
			if err != nil {
				w.res.addDefect(DefectCarrierCorrupt)
				return nil, num, false
			}
			r = w.limited(zr)
		case "ASCIIHexDecode", "AHx":
			r = &hexReader{r: r}
		case "ASCII85Decode", "A85":
			r = ascii85.NewDecoder(&a85Trim{r: r})
		default:
			w.res.addDefect(DefectPDFUnsupportedFilter)
			return nil, num, false
		}
	}
	return r, num, true
}

// pdfKeyword finds the keyword kw as a token: after white space or a
// dictionary's end, before a line break ("stream" also ends
// "/octet-stream" and "endstream").
func pdfKeyword(b []byte, kw string) int {
	for from := 0; from < len(b); {
		i := bytes.Index(b[from:], []byte(kw))
		if i < 0 {
			return -1
		}
		i += from
		before := i == 0 || b[i-1] == '>' || b[i-1] == ' ' || b[i-1] == '\n' || b[i-1] == '\r' || b[i-1] == '\t'
		j := i + len(kw)
		after := j < len(b) && (b[j] == '\r' || b[j] == '\n')
		if before && after {
			return i
		}
		from = i + 1
	}
	return -1
}

// pdfFindEnd returns the length of a stream whose /Length is indirect or
// wrong: up to the next "endstream", looked for within Options.Spill.
func (w *walker) pdfFindEnd(src readerAtSize, data int64) int64 {
	end := min(src.Size(), data+w.opts.Spill)
	buf := make([]byte, 64<<10+16)
	for off := data; off < end; off += 64 << 10 {
		n, _ := src.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if i := bytes.Index(buf[:n], []byte("endstream")); i >= 0 {
			l := off - data + int64(i)
			for l > 0 {
				c := window(src, data+l-1, 1)
				if len(c) == 0 || c[0] != '\n' && c[0] != '\r' {
					break
				}
				l--
			}
			return l
		}
		if n < len(buf) {
			break
		}
	}
	return end - data
}

// hexReader decodes ASCIIHexDecode: hex digits, white space ignored, '>'
// ends the data.
type hexReader struct {
	r    io.Reader
	half int // -1: no pending nibble
	done bool
	buf  [4096]byte
	init bool
}

func (h *hexReader) Read(p []byte) (int, error) {
	if !h.init {
		h.half, h.init = -1, true
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	for n == 0 {
		if h.done {
			if h.half >= 0 && len(p) > 0 {
				p[0], h.half = byte(h.half<<4), -1
				return 1, io.EOF
			}
			return 0, io.EOF
		}
		k := 2 * len(p)
		if h.half >= 0 {
			k--
		}
		m, err := h.r.Read(h.buf[:min(len(h.buf), k)])
		for _, c := range h.buf[:m] {
			if c == '>' {
				h.done = true
				break
			}
			v := unhex(c)
			if v < 0 {
				continue
			}
			if h.half < 0 {
				h.half = v
			} else {
				p[n] = byte(h.half<<4 | v)
				n++
				h.half = -1
			}
		}
		if err != nil {
			h.done = true
		}
	}
	return n, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// a85Trim stops an ASCII85 stream at its "~>" end marker.
type a85Trim struct {
	r    io.Reader
	done bool
}

func (a *a85Trim) Read(p []byte) (int, error) {
	if a.done {
		return 0, io.EOF
	}
	n, err := a.r.Read(p)
	if i := bytes.IndexByte(p[:n], '~'); i >= 0 {
		a.done = true
		return i, io.EOF
	}
	return n, err
}
