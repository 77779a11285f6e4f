package mimeparse

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"
)

// maxFields bounds the fields kept from one header block, whatever
// Limits.HeaderBytes says: a megabyte of "a:\n" lines would otherwise cost
// tens of megabytes of Field values (limit-header-bytes).
const maxFields = 5000

// maxLateBytes bounds the bytes of the names kept of the top-level fields
// past maxFields (Message.HasHeader sees them; at most maxFields names).
const maxLateBytes = 256 << 10

// maxTotalFields bounds the fields kept from all header blocks of a message.
const maxTotalFields = 50000

// headerState accumulates one header block.
type headerState struct {
	fields  []Field
	cur     []byte // raw bytes of the field being read, name and line breaks included
	inField bool   // cur holds a field
	curOff  int64
	bytes   int
	limited bool
	defects []string
	// fieldBreak is the length of the line break of the last line consumed.
	fieldBreak int
	// late collects the lower-case names of the fields past the limit
	// when keepLate is set (top-level header only; at most maxFields
	// names), and dropped counts those fields.
	keepLate  bool
	late      map[string]bool
	lateBytes int // of the names in late, at most maxLateBytes
	dropped   int
	// visit, when set (ScanHeader), gets every field instead of fields,
	// and no limit applies.
	visit func(Field)
}

// readHeader reads the header block at the current position, through the
// empty line that ends it. A line that is neither a field nor a
// continuation ends the header without being consumed (the body starts
// there: missing-header-body-separator). A delimiter line of an open
// multipart ends the header and the (empty) body: ended is true and m says
// which delimiter.
//
// Header names are what RFC 5322 §3.6.8 allows (printable ASCII but ":"),
// with the obsolete "Name :" form accepted (§4.5.3); this is also Python's
// headerRE apart from the space before the colon.
func (p *parser) readHeader(h *headerState) (ended bool, m scanEnd) {
	in := &p.in
	first := true
	for {
		lineOff := in.off
		line, full := in.line()
		if len(line) == 0 { // end of input
			p.endField(h)
			return true, scanEnd{node: -1, end: in.off}
		}
		if !full {
			h.add(DefectLimitLineLength)
		}
		if len(line) >= 2 && line[0] == '-' && line[1] == '-' && len(p.stack) > 0 {
			if node, isClose, ok := p.matchStack(line); ok {
				p.endField(h)
				// No body: the header's last line break belongs to the
				// delimiter (RFC 2046 §5.1.1), so the part, and its last
				// field, end before it.
				e := lineOff - int64(h.fieldBreak)
				if n := len(h.fields); n > 0 && h.fields[n-1].End == lineOff {
					h.fields[n-1].End = e
				}
				in.advance(len(line))
				return true, scanEnd{node: node, isClose: isClose, end: e}
			}
		}
		if line[0] == '\n' || line[0] == '\r' {
			// RFC 5322 §2.1: the empty line ends the header. (Python's
			// NLCRE also takes a line starting with a bare CR.)
			p.endField(h)
			in.advance(len(line))
			if !full {
				in.skipLine()
			}
			return false, scanEnd{}
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !h.inField {
				if first {
					h.add(DefectFirstLineContinuation)
				}
				p.consumeLine(h, line, full)
				first = false
				continue
			}
			p.appendField(h, line)
			p.consumeLine(h, line, full)
			continue
		}
		if bytes.HasPrefix(line, []byte("From ")) {
			p.endField(h)
			if !first {
				h.add(DefectMisplacedUnixFrom)
			}
			p.consumeLine(h, line, full)
			first = false
			continue
		}
		colon, ok := fieldNameEnd(line)
		if !ok {
			h.add(DefectMissingHeaderBodySeparator)
			p.endField(h)
			return false, scanEnd{}
		}
		p.endField(h)
		if colon == 0 {
			h.add(DefectMissingHeaderName)
			p.consumeLine(h, line, full)
			first = false
			continue
		}
		h.curOff = lineOff
		h.cur = h.cur[:0]
		h.inField = true
		p.appendField(h, line)
		p.consumeLine(h, line, full)
		first = false
	}
}

// fieldNameEnd returns the index of the colon ending a field name, and
// false when line does not start a field.
func fieldNameEnd(line []byte) (int, bool) {
	for i, c := range line {
		switch {
		case c == ':':
			return i, true
		case c == ' ' || c == '\t':
			// obsolete "Name :" (RFC 5322 §4.5.3)
			j := i
			for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
				j++
			}
			if i > 0 && j < len(line) && line[j] == ':' {
				return j, true
			}
			return 0, false
		case c < 33 || c > 126:
			return 0, false
		}
	}
	return 0, false
}

func (h *headerState) add(d string) {
	for _, x := range h.defects {
		if x == d {
			return
		}
	}
	h.defects = append(h.defects, d)
}

func (p *parser) consumeLine(h *headerState, line []byte, full bool) {
	h.fieldBreak = lineBreakLen(line)
	if p.lim.LineLength > 0 && len(line)-h.fieldBreak > p.lim.LineLength {
		h.add(DefectLimitLineLength)
	}
	if bytes.IndexByte(line[:len(line)-h.fieldBreak], '\r') >= 0 {
		h.add(DefectBareCR)
	}
	p.in.advance(len(line))
	if !full {
		p.in.skipLine()
	}
	h.bytes += len(line)
	if h.visit != nil {
		return
	}
	tooMany := len(h.fields) >= maxFields || p.nfields+len(h.fields) >= maxTotalFields
	if (tooMany || h.bytes > p.lim.HeaderBytes && p.lim.HeaderBytes > 0) && !h.limited {
		h.limited = true
		h.add(DefectLimitHeaderBytes)
	}
}

func (p *parser) appendField(h *headerState, line []byte) {
	if !h.inField || h.limited && len(h.cur) > 0 {
		return // past the limit only the first line is kept, for the name
	}
	h.cur = append(h.cur, line...)
}

// endField turns the accumulated raw field into a Field.
func (p *parser) endField(h *headerState) {
	if !h.inField || len(h.cur) == 0 {
		h.inField = false
		return
	}
	raw := h.cur // reused for the next field: everything kept is copied
	h.inField = false
	colon, _ := fieldNameEnd(raw)
	if h.limited {
		h.dropped++
		name := raw[:colon]
		if i := bytes.IndexAny(name, " \t"); i >= 0 {
			name = name[:i]
		}
		if h.keepLate && len(h.late) < maxFields && h.lateBytes+len(name) <= maxLateBytes {
			if h.late == nil {
				h.late = map[string]bool{}
			}
			n := strings.ToLower(string(name))
			if !h.late[n] {
				h.late[n] = true
				h.lateBytes += len(n)
			}
		}
		return
	}
	all := string(raw[:len(raw)-lineBreakLen(raw)]) // one copy; Name and Raw share it
	name := all[:colon]
	if i := indexBlank(name); i >= 0 {
		name = name[:i]
		h.add(DefectSpaceBeforeColon)
	}
	f := Field{
		Name:  name,
		Raw:   all[colon+1:],
		Start: h.curOff,
		End:   h.curOff + int64(len(raw)),
	}
	v := unfold(f.Raw)
	if !utf8.ValidString(v) {
		h.add(Defect8bitHeader)
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	var ds []string
	f.Value, ds = decodeHeaderWords(v)
	for _, d := range ds {
		h.add(d)
	}
	if h.visit != nil {
		h.visit(f)
		return
	}
	h.fields = append(h.fields, f)
}

// unfold undoes RFC 5322 §2.2.3 folding (a line break followed by white
// space) and trims the value.
func unfold(s string) string {
	if strings.IndexByte(s, '\n') < 0 && strings.IndexByte(s, '\r') < 0 { // IndexAny builds a set per call
		return strings.Trim(s, " \t")
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' {
			continue
		}
		b.WriteByte(c)
	}
	return strings.Trim(b.String(), " \t")
}

// indexBlank is strings.IndexAny(s, " \t") for a short string (a field
// name), without building IndexAny's byte set per call.
func indexBlank(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			return i
		}
	}
	return -1
}

// ScanHeader reads the header block at the start of r exactly as Parse
// reads a message's top-level header, but with no limit on its fields or
// bytes, and calls visit with each field in order instead of keeping them.
// Offsets are relative to the start of r. It is how an editor sees the
// fields that Message.Fields could not hold (Message.HeaderTruncated): the
// caller bounds what r holds (rules.Rewrite reads the block Parse measured,
// Parts[0].BodyOffset bytes). The error is only ever a read error.
func ScanHeader(r io.Reader, visit func(Field)) error {
	p := &parser{msg: &Message{}}
	// Parse's pooled buffers (nothing visit gets points into them): a
	// milter's or the proxy's edits scan a few fields per message, and a
	// fresh 64 KiB read buffer each time was most of what they allocated.
	bufs := bufPool.Get().(*buffers)
	defer bufPool.Put(bufs)
	p.in.rd = r
	p.in.buf = bufs.in // the same size as Parse's: over-long lines end where they do there
	h := headerState{visit: visit, cur: bufs.field[:0]}
	p.readHeader(&h)
	if cap(h.cur) <= 1<<20 {
		bufs.field = h.cur[:0]
	}
	return p.in.err
}
