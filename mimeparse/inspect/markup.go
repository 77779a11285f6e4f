package inspect

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// HTML and SVG (markup.go): tokenized with golang.org/x/net/html (its
// tokenizer is what browsers' parsing rules look like in Go; SVG's
// <script> is raw text to it as to a browser). Reported:
//
//   - script: a <script> element, an on* event handler attribute, or a
//     javascript: URL (href, src, action, formaction, xlink:href, ...).
//   - search-uri / remote-share: a search: or search-ms: URI, or a
//     file:// or \\host path, in a URL attribute or a meta refresh.
//   - HTML smuggling: a data: URL (in any attribute or script) and every
//     long base64 run inside a script is decoded (within the budget) and
//     sniffed; executables, archives and documents are handed on as
//     embedded files. Smaller or harmless blobs (images, fonts) are not.

const (
	markupMinBlob  = 64      // base64 characters: shorter runs are not looked at
	markupMaxBlobs = 1000    // blobs decoded per body
	markupMaxText  = 8 << 20 // bytes of one script or attribute looked at for blobs
)

var urlAttrs = map[string]bool{
	"href": true, "src": true, "action": true, "formaction": true, "xlink:href": true, "data": true,
	"poster": true, "background": true, "codebase": true, "content": true, "srcdoc": false,
}

func (w *walker) markup(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	if !markupWorthTokenizing(src) {
		return
	}
	z := html.NewTokenizer(io.NewSectionReader(src, 0, src.Size()))
	z.SetMaxBuf(markupMaxText)
	blobs := 0
	blob := func(b []byte) bool {
		if blobs >= markupMaxBlobs {
			w.res.addDefect(DefectLimitEmbedded)
			return false
		}
		blobs++
		return w.markupBlob(b, emb)
	}
	inScript := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() != io.EOF && z.Err() != nil {
				// ErrBufferExceeded: a token larger than markupMaxText.
				w.res.addDefect(DefectLimitEmbedded)
			}
			return
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tag == "script" {
				out.add(ActiveScript)
				inScript = tt == html.StartTagToken
			}
			refresh := false
			var content string
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				key := string(k)
				if len(key) > 2 && key[:2] == "on" {
					out.add(ActiveScript)
				}
				if tag == "meta" && key == "http-equiv" && strings.EqualFold(string(v), "refresh") {
					refresh = true
				}
				if key == "content" {
					content = string(v)
				}
				if urlAttrs[key] && key != "content" {
					if !w.markupURL(v, out, blob) {
						return
					}
				}
			}
			if refresh {
				// content="0; url=search-ms:..."
				if _, u, ok := strings.Cut(content, "="); ok {
					urlFacts(strings.Trim(u, `'" `), out)
				}
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "script" {
				inScript = false
			}
		case html.TextToken:
			if inScript {
				t := z.Text()
				for _, s := range []string{"search-ms:", "search:"} {
					if i := bytes.Index(t, []byte(s)); i >= 0 {
						urlFacts(string(t[i:min(len(t), i+512)]), out)
					}
				}
				if !w.scriptBlobs(t, blob) {
					return
				}
			}
		}
	}
}

// markupWorthTokenizing is a quick pass over the page: most HTML mail
// bodies have no script, no data: URL and no link worth a look. The
// tokenizer (and its allocations) runs only when the page holds, in any
// case, one of the strings without which it can have none of the facts
// above ("script", "data:", "search", "file:", a UNC "\\\\", "refresh",
// "&#", "%5c"), or an on* attribute (markupScan).
func markupWorthTokenizing(src readerAtSize) bool {
	pb := getCarrierBuf()
	defer putCarrierBuf(pb)
	buf := (*pb)[:min(int64(cap(*pb)), 64<<10+markupOverlap)]
	size := src.Size()
	for off := int64(0); off < size; off += 64 << 10 {
		n, _ := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if markupScan(buf[:n]) {
			return true
		}
	}
	return false
}

// markupOverlap is how many bytes each 64 KiB chunk of the quick pass
// reads past its end, so a needle across two chunks is seen.
const markupOverlap = 16

// Needles of the quick pass, each found by its rarest pair of bytes:
// bit k of scanFirst[c] says c (either case) is the first byte of pair k,
// bit k of scanSecond[c] that it is the second. A position where the two
// masks share a bit holds pair k, and only there is the needle compared
// whole, from where it would start. The pairs are chosen rare in text
// ("rc" of search, "ef" of refresh, not "se" and "re", which English is
// full of), and an event handler is looked for from the "=" of an
// attribute (handlerBefore), not from every "on": one branch per byte,
// seldom taken, and no lower-casing pass.
const (
	pairSC = 1 << iota // script
	pairRC             // search, at its fourth byte
	pairAC             // data:, at its fourth byte
	pairEC             // file:, at its fourth byte
	pairBS             // \\
	pairEF             // refresh, at its second byte
	pairAH             // &#
	pairPC             // %5c
	pairEQ             // any byte and "=": an event handler before it?
)

var scanFirst, scanSecond = func() (f, s [256]uint16) {
	for _, p := range []struct {
		bit  uint16
		pair string
	}{{pairSC, "sc"}, {pairRC, "rc"}, {pairAC, "a:"}, {pairEC, "e:"}, {pairBS, `\\`},
		{pairEF, "ef"}, {pairAH, "&#"}, {pairPC, "%5"}} {
		for k, t := range []*[256]uint16{&f, &s} {
			c := p.pair[k]
			t[c] |= p.bit
			if c >= 'a' && c <= 'z' {
				t[c-32] |= p.bit
			}
		}
	}
	for c := range f {
		f[c] |= pairEQ
	}
	s['='] |= pairEQ
	return
}()

// markupScan reports whether b holds, in any case, one of the needles
// above or an event-handler attribute (handlerBefore).
func markupScan(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	next := b[1:]
	for i, c := range b[:len(next)] {
		m := scanFirst[c] & scanSecond[next[i]]
		if m == 0 {
			continue
		}
		var hit bool
		switch m {
		case pairSC:
			hit = hasAtFold(b, i, "script")
		case pairRC:
			hit = i >= 3 && hasAtFold(b, i-3, "search")
		case pairAC:
			hit = i >= 3 && hasAtFold(b, i-3, "data:")
		case pairEC:
			hit = i >= 3 && hasAtFold(b, i-3, "file:")
		case pairEF:
			hit = i >= 1 && hasAtFold(b, i-1, "refresh")
		case pairPC:
			hit = i+2 < len(b) && b[i+2]|0x20 == 'c'
		case pairEQ:
			hit = handlerBefore(b, i+1)
		default: // pairBS, pairAH: the pair is the needle
			hit = true
		}
		if hit {
			return true
		}
	}
	return false
}

// hasAtFold reports whether b holds s (lower case) at i, ASCII letters of b
// compared in either case.
func hasAtFold(b []byte, i int, s string) bool {
	if len(b)-i < len(s) {
		return false
	}
	for j := 0; j < len(s); j++ {
		c := b[i+j]
		if c >= 'A' && c <= 'Z' {
			c += 32
		}
		if c != s[j] {
			return false
		}
	}
	return true
}

// handlerBefore reports an event-handler attribute ending at the "=" at
// b[q]: after white space, "/", or a quote, "on" (in any case) and more
// letters, optional white space, then the "=".
func handlerBefore(b []byte, q int) bool {
	e := q
	for e > 0 && (b[e-1] == ' ' || b[e-1] == '\t' || b[e-1] == '\n' || b[e-1] == '\r') {
		e--
	}
	s := e
	for s > 0 && (b[s-1] >= 'a' && b[s-1] <= 'z' || b[s-1] >= 'A' && b[s-1] <= 'Z') {
		s--
	}
	if e-s < 3 || s == 0 || b[s]|0x20 != 'o' || b[s+1]|0x20 != 'n' {
		return false
	}
	switch b[s-1] {
	case ' ', '\t', '\n', '\r', '/', '"', '\'':
		return true
	}
	return false
}

// markupURL looks at one URL attribute value.
func (w *walker) markupURL(v []byte, out *carried, blob func([]byte) bool) bool {
	t := bytes.TrimSpace(v)
	// Browsers drop tabs and newlines inside a scheme (java\tscript:).
	t = bytes.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, t[:min(len(t), 64)])
	l := strings.ToLower(string(t))
	switch {
	case strings.HasPrefix(l, "javascript:") || strings.HasPrefix(l, "vbscript:"):
		out.add(ActiveScript)
	case strings.HasPrefix(l, "data:"):
		return w.dataURL(bytes.TrimSpace(v), blob)
	default:
		s := string(bytes.TrimSpace(v[:min(len(v), 4096)]))
		if u, err := url.PathUnescape(s); err == nil && strings.HasPrefix(strings.ToLower(u), "search") {
			s = u
		}
		urlFacts(s, out)
	}
	return true
}

// dataURL decodes a base64 data: URL and looks at its bytes.
func (w *walker) dataURL(v []byte, blob func([]byte) bool) bool {
	meta, data, ok := bytes.Cut(v, []byte(","))
	if !ok || !bytes.HasSuffix(bytes.ToLower(meta), []byte(";base64")) {
		return true
	}
	return blob(data)
}

// scriptBlobs finds data: URLs and long base64 runs in script text.
func (w *walker) scriptBlobs(t []byte, blob func([]byte) bool) bool {
	for i := 0; i < len(t); {
		if !isB64(t[i]) {
			i++
			continue
		}
		j := i
		for j < len(t) && (isB64(t[j]) || t[j] == '=') {
			j++
		}
		if j-i >= markupMinBlob {
			if !blob(t[i:j]) {
				return false
			}
		}
		i = j + 1
	}
	return true
}

func isB64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
}

// markupBlob decodes base64 (standard or URL alphabet, padding optional)
// within the budget and hands it on when it is an executable, an archive
// or a document.
func (w *walker) markupBlob(b []byte, emb func(string, io.Reader, int64) bool) bool {
	b = bytes.TrimRight(bytes.TrimSpace(b), "=")
	enc := base64.RawStdEncoding
	if bytes.ContainsAny(b, "-_") {
		enc = base64.RawURLEncoding
	}
	n := int64(enc.DecodedLen(len(b)))
	if n > w.left() {
		w.spent()
		w.res.addDefect(DefectLimitDecompressedBytes)
		return false
	}
	w.charge(n)
	dec := make([]byte, n)
	m, err := enc.Decode(dec, b)
	if err != nil && m < 16 {
		return true // not base64 after all: text that looked like it
	}
	dec = dec[:m]
	if !blobMatters(dec) {
		return true
	}
	return emb("", bytes.NewReader(dec), int64(len(dec)))
}

// blobMatters reports whether decoded bytes are worth a leaf: an
// executable, a container, a carrier that is not markup, or a document.
func blobMatters(b []byte) bool {
	head := b[:min(len(b), headMax)]
	if isExecutable(head) || sniffKind(head) != kindNone {
		return true
	}
	switch sniffCarrier(head, &Options{}) {
	case carrierPDF, carrierRTF, carrierOneNote, carrierDisk:
		return true
	case carrierMarkup:
		// A page that builds a page: its own scripts count.
		return true
	}
	return false
}
