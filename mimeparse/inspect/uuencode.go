package inspect

import (
	"bytes"
)

// uuencode (POSIX uuencode, as Outlook Express and many MUAs still decode
// inside text/plain bodies): a line "begin MODE NAME", lines whose first
// character encodes the decoded length, and a line "end".

// uuLineMax bounds the bytes of one line kept by the scanner; uuencode lines
// are at most 62 bytes, longer lines are kept truncated.
const uuLineMax = 1024

// uuScanner finds uuencode blocks in a text body, streaming: the body is cut
// into lines and each line is handled by pure functions.
type uuScanner struct {
	parent *Inspector
	line   []byte
	cur    *Inspector
	name   string
	count  int
	dec    []byte
}

func newUUScanner(p *Inspector) *uuScanner {
	return &uuScanner{parent: p, line: make([]byte, 0, 128), dec: make([]byte, 0, 64)}
}

func (u *uuScanner) write(p []byte) {
	for len(p) > 0 {
		if u.cur == nil && len(u.line) == 0 {
			// At a line start outside a block only a line starting with
			// 'b' can matter (endLine ignores every other one): jump to
			// the next such line, or to the last, unfinished line.
			if p = skipToB(p); len(p) == 0 {
				return
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			u.appendLine(p)
			return
		}
		u.appendLine(p[:i])
		u.endLine()
		p = p[i+1:]
	}
}

// skipToB drops the whole lines at the start of p (which starts a line)
// that do not start with 'b'. What is left starts with 'b' or is the last
// line of p, without its line break; it may be empty.
func skipToB(p []byte) []byte {
	if len(p) > 0 && p[0] == 'b' {
		return p
	}
	if j := bytes.Index(p, []byte("\nb")); j >= 0 {
		return p[j+1:]
	}
	return p[bytes.LastIndexByte(p, '\n')+1:]
}

func (u *uuScanner) appendLine(p []byte) {
	if room := uuLineMax - len(u.line); room > 0 {
		u.line = append(u.line, p[:min(room, len(p))]...)
	}
}

func (u *uuScanner) endLine() {
	line := bytes.TrimRight(u.line, "\r")
	u.line = u.line[:0]
	if u.cur == nil {
		// Cheap test first: most lines of a text body do not start with 'b'.
		if len(line) < 6 || line[0] != 'b' {
			return
		}
		name, ok := parseUUBegin(line)
		if !ok {
			return
		}
		u.count++
		if u.count > maxEmbedded || u.parent.nest >= maxNest {
			u.parent.res.addDefect(DefectLimitEmbedded)
			return
		}
		opts := u.parent.opts
		opts.Text, opts.Name, opts.Declared = false, name, ""
		u.cur, u.name = newNested(opts, u.parent.nest+1), name
		return
	}
	if string(bytes.TrimRight(line, " \t")) == "end" {
		u.finish()
		return
	}
	var ok bool
	u.dec, ok = uuDecodeLine(u.dec[:0], line)
	if !ok {
		u.parent.res.addDefect(DefectUUEncodeCorrupt)
	}
	u.cur.Write(u.dec)
}

func (u *uuScanner) finish() {
	u.parent.res.Embedded = append(u.parent.res.Embedded, Embedded{Kind: 'u', Name: u.name, Result: u.cur.Close()})
	u.cur = nil
}

// close handles a last line without a line break and an unterminated block.
func (u *uuScanner) close() {
	if len(u.line) > 0 {
		u.endLine()
	}
	if u.cur != nil {
		u.parent.res.addDefect(DefectUUEncodeUnterminated)
		u.finish()
	}
}

// parseUUBegin parses "begin MODE NAME" (MODE: 3 or 4 octal digits). It
// returns the name as written, with surrounding blanks trimmed.
func parseUUBegin(line []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(line, []byte("begin "))
	if !ok {
		return "", false
	}
	rest = bytes.TrimLeft(rest, " ")
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '7' {
		i++
	}
	if i < 3 || i > 4 || i == len(rest) || rest[i] != ' ' {
		return "", false
	}
	name := bytes.Trim(rest[i:], " \t")
	if len(name) == 0 {
		return "", false
	}
	return string(name), true
}

// uuDecodeLine appends the bytes encoded by one uuencode line to dst. The
// first character gives the length; characters are (c-32)&63, with '`' as
// zero. Missing characters (trailing blanks stripped in transit) count as
// zero, as lenient decoders do. ok is false when a character is outside
// the uuencode alphabet or the length is impossible; the line is still
// decoded leniently.
func uuDecodeLine(dst, line []byte) ([]byte, bool) {
	if len(line) == 0 {
		return dst, true
	}
	n := int((line[0] - 32) & 63)
	ok := line[0] >= 32 && line[0] <= 96
	data := line[1:]
	if (n+2)/3*4 < len(data)-4 {
		// far more characters than the length says: not a uuencode line
		ok = false
	}
	val := func(i int) byte {
		if i >= len(data) {
			return 0
		}
		c := data[i]
		if c < 32 || c > 96 {
			ok = false
		}
		return (c - 32) & 63
	}
	for i := 0; n > 0; i += 4 {
		a, b, c, d := val(i), val(i+1), val(i+2), val(i+3)
		dst = append(dst, a<<2|b>>4)
		if n > 1 {
			dst = append(dst, b<<4|c>>2)
		}
		if n > 2 {
			dst = append(dst, c<<6|d)
		}
		n -= 3
	}
	return dst, ok
}
