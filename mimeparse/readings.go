package mimeparse

import (
	"bytes"
	"io"
	"strconv"
	"strings"
)

// Alternative readings (docs/DESIGN.md invariant 4: where two readings of a
// message are possible, inspect both). Where mail clients or MTAs resolve
// an ambiguity differently from mailgate's primary reading, the other
// reading is parsed too, by a nested Parse of a synthesized header followed
// by the raw bytes of the part (one pass still: the bytes are copied to it
// as the primary reading consumes them, through an io.Pipe, as nested.go
// does for encoded messages). Its parts are grafted into Message.Parts with
// Part.Reading set to the reading's name and paths "P.rK.…", which no IMAP
// section number can equal. They exist only in that reading: their carrier
// (Message.Carrier) is the part whose raw bytes hold them, which is what a
// strip replaces, so a strip removes them from every reading.
//
// Nothing of this runs for an unambiguous message: each reading starts only
// where a defect calls for it.
//
// The reading names (Part.Reading):
const (
	ReadingLastContentType  = "last-content-type"              // duplicate Content-Type: the last one wins
	ReadingLastCTE          = "last-content-transfer-encoding" // duplicate Content-Transfer-Encoding: the last one wins
	ReadingCTEFirstToken    = "cte-first-token"                // "base64; x": decoded by its first token
	ReadingLastBoundary     = "last-boundary"                  // several boundary= parameters: the last one splits
	ReadingDecodedMultipart = "decoded-multipart"              // a multipart with a transfer encoding, decoded first
	ReadingEpilogue         = "epilogue"                       // parts after the close delimiter
	ReadingSkipJunkLine     = "skip-junk-line"                 // a header line without a colon skipped, the header goes on
	ReadingOuterBoundary    = "outer-boundary"                 // a delimiter shared by two multiparts given to the outer one
)

// maxReadings bounds the alternative readings of one message, those of
// enclosed messages and of other readings included: each re-reads bytes
// of the message once more, and nested ambiguities would otherwise
// multiply them. Past it: limit-readings (fail closed). 32, not the 16 of
// the shared count it replaced: split between parsers (below), a budget
// goes less far, and the corpus's deepest chain (cpython/msg_39.txt, six
// readings each inside the last) and its sibling chains
// (php-mime-mail-parser/issue126) parse as they did.
const maxReadings = 32

// The readings budget is split, not shared: a parser spends its own; a
// nested parse (an enclosed message, a reading) gets three quarters of
// what is left when it starts (startNestedWith: readings nest in chains,
// a reading's nested parse finding the next ambiguity), and hands back
// what it did not use when it ends (finishNested, finishAlt). Nested
// parses run beside the outer one; with one shared count, which readings
// fit under the limit would follow how the goroutines were scheduled, and
// the same message could parse two ways (TestReadingsDeterministic). Split,
// each parser's share depends only on the bytes before its start and on
// what the nested parses it waited for used, and the total stays within
// maxReadings.

// alt is one alternative reading being parsed.
type alt struct {
	name     string
	carrier  int  // index in Message.Parts of the part whose raw bytes hold the reading
	children bool // graft only the children of the nested root (a synthesized container)
	nest     *nested
	w        io.Writer // where the bytes go: nest, or a decoder in front of it
	b64      *b64Writer
	qp       *qpWriter

	// tapping raw input (input.advance): the bytes not yet passed on, from
	// raw offset holdOff; the last line and the line break before it are
	// held back until the reading's end is known, as they may be the
	// delimiter that ends the part.
	hold    []byte
	holdOff int64
	skip    bool // drop the bytes up to the first "\n" (the junk line)
	closed  bool
}

// startAlt starts the nested parse of a reading whose bytes are those of
// Parts[carrier]; header is written to it first. nil when a limit leaves
// no room (the limit's defect is then recorded).
func (p *parser) startAlt(name string, carrier int, header string, outerFirst bool) *alt {
	part := p.msg.Parts[carrier]
	if p.readingsLeft <= 0 {
		// readings of readings could multiply with the nesting depth
		p.partDefect(part, DefectLimitReadings)
		p.msgDefect(DefectLimitReadings)
		return nil
	}
	p.readingsLeft--
	nest := p.startNestedWith(part, outerFirst)
	if nest == nil {
		return nil
	}
	a := &alt{name: name, carrier: carrier, nest: nest, w: nest}
	nest.Write([]byte(header))
	return a
}

// write passes bytes on to the reading.
func (a *alt) write(b []byte) {
	if a.skip {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return
		}
		a.skip = false
		b = b[i+1:]
	}
	if len(b) > 0 {
		a.w.Write(b)
	}
}

// feed takes the raw bytes input.advance consumes, from raw offset
// holdOff+len(hold) on.
func (a *alt) feed(b []byte) {
	a.hold = append(a.hold, b...)
	cut := holdCut(a.hold)
	if cut <= 0 {
		return
	}
	a.write(a.hold[:cut])
	a.holdOff += int64(cut)
	a.hold = a.hold[:copy(a.hold, a.hold[cut:])]
}

// holdCut returns how many leading bytes of b can be passed on: all but
// the last line and the line break before it. A line longer than the read
// buffer cannot be a delimiter (limit-line-length), so at most that much
// is held.
func holdCut(b []byte) int {
	last := bytes.LastIndexByte(b, '\n')
	if last < 0 {
		return max(len(b)-2*bufSize, 0)
	}
	prev := bytes.LastIndexByte(b[:last], '\n')
	if prev < 0 {
		return max(len(b)-2*bufSize, 0)
	}
	if prev > 0 && b[prev-1] == '\r' {
		prev--
	}
	return max(prev, len(b)-2*bufSize)
}

// tapFrom makes the reading receive the raw input from the current offset
// on, until endTap.
func (p *parser) tapFrom(a *alt) {
	a.holdOff = p.in.off
	p.in.taps = append(p.in.taps, a)
}

// endTap stops the reading's tap at raw offset end: what was held back
// before end is passed on, the rest dropped.
func (p *parser) endTap(a *alt, end int64) {
	for i, t := range p.in.taps {
		if t == a {
			p.in.taps = append(p.in.taps[:i], p.in.taps[i+1:]...)
			break
		}
	}
	if n := end - a.holdOff; n > 0 {
		a.write(a.hold[:min(n, int64(len(a.hold)))])
	}
	a.hold = nil
}

// finishAlt ends the reading and grafts its parts after the current ones.
func (p *parser) finishAlt(a *alt) {
	if a == nil || a.closed {
		return
	}
	a.closed = true
	if a.b64 != nil {
		a.b64.close()
	}
	if a.qp != nil {
		a.qp.close()
	}
	a.nest.pw.Close()
	res := <-a.nest.done
	if res.panic != nil {
		panic(res.panic)
	}
	sub := res.msg
	p.readingsLeft += sub.readingsLeft
	carrier := p.msg.Parts[a.carrier]
	p.nreadings++
	prefix := carrier.Path + ".r" + strconv.Itoa(p.nreadings) + "."
	base := len(p.msg.Parts)
	skip := 0
	if a.children && len(sub.Parts) > 0 {
		skip = 1 // the synthesized container stands for the carrier itself
		base--
	}
	for _, q := range sub.Parts[skip:] {
		switch {
		case q.Parent < skip:
			q.Parent = a.carrier
		default:
			q.Parent += base
		}
		q.origin = originReading
		if q.Reading == "" {
			q.Reading = a.name
		}
		q.Path = prefix + q.Path
		q.Depth += carrier.Depth + 1
		if skip == 1 {
			q.Depth-- // the skipped root stood at the carrier's depth
		}
		q.HeaderOffset, q.BodyOffset, q.EndOffset = carrier.HeaderOffset, carrier.BodyOffset, carrier.EndOffset
		for i := range q.Fields {
			q.Fields[i].Start, q.Fields[i].End = carrier.BodyOffset, carrier.BodyOffset
		}
		p.msg.Parts = append(p.msg.Parts, q)
		for _, d := range q.Defects {
			p.msgDefect(d)
		}
	}
	// limits hit anywhere in the reading count: what was not inspected is
	// not inspected in any reading
	for _, d := range sub.Defects {
		if strings.HasPrefix(d, "limit-") || d == "spill-failed" {
			p.msgDefect(d)
		}
	}
}

// rawHeader writes fields back as header lines ("Name:Raw" CRLF), leaving
// out those for which drop is true.
func rawHeader(b *strings.Builder, fields []Field, drop func(i int, f *Field) bool) {
	for i := range fields {
		f := &fields[i]
		if drop != nil && drop(i, f) {
			continue
		}
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.Raw)
		b.WriteString("\r\n")
	}
}

// startReadings starts the readings that part's header calls for (the
// part's header is read, the body not yet: p.in.off is its first byte).
// It returns them, to be ended with endReadings where the part ends.
func (p *parser) startReadings(idx int, part *Part, hd described, junkLine bool) []*alt {
	var out []*alt
	start := func(name, header string, skip bool) *alt {
		a := p.startAlt(name, idx, header, false)
		if a == nil {
			return nil
		}
		a.skip = skip
		p.tapFrom(a)
		out = append(out, a)
		return a
	}
	// the first and last Content-Type and Content-Transfer-Encoding fields
	// (no allocation: this runs for every part)
	ct0, ct1, cte0, cte1 := -1, -1, -1, -1
	for i := range part.Fields {
		switch fieldKey(part.Fields[i].Name) {
		case "content-type":
			if ct0 < 0 {
				ct0 = i
			}
			ct1 = i
		case "content-transfer-encoding":
			if cte0 < 0 {
				cte0 = i
			}
			cte1 = i
		}
	}
	norm := func(i int) string { return strings.ToLower(strings.TrimSpace(unfold(part.Fields[i].Raw))) }
	if ct1 != ct0 && norm(ct0) != norm(ct1) {
		last := ct1
		var b strings.Builder
		rawHeader(&b, part.Fields, func(i int, f *Field) bool { return fieldKey(f.Name) == "content-type" && i != last })
		b.WriteString("\r\n")
		start(ReadingLastContentType, b.String(), false)
	}
	if cte1 != cte0 && norm(cte0) != norm(cte1) {
		last := cte1
		var b strings.Builder
		rawHeader(&b, part.Fields, func(i int, f *Field) bool {
			return fieldKey(f.Name) == "content-transfer-encoding" && i != last
		})
		b.WriteString("\r\n")
		start(ReadingLastCTE, b.String(), false)
	}
	if cte0 >= 0 {
		if tok := cteFirstToken(part.TransferEncoding); tok != "" {
			var b strings.Builder
			rawHeader(&b, part.Fields, func(i int, f *Field) bool { return fieldKey(f.Name) == "content-transfer-encoding" })
			b.WriteString("Content-Transfer-Encoding: " + tok + "\r\n\r\n")
			start(ReadingCTEFirstToken, b.String(), false)
		}
	}
	if part.IsMultipart || strings.HasPrefix(part.ContentType, "multipart/") {
		if len(hd.boundaries) > 1 {
			lastB := hd.boundaries[len(hd.boundaries)-1]
			if lastB != hd.boundary && lastB != "" {
				var b strings.Builder
				rawHeader(&b, part.Fields, func(i int, f *Field) bool { return fieldKey(f.Name) == "content-type" })
				b.WriteString("Content-Type: " + part.ContentType + "; boundary=\"" + quoteParam(lastB) + "\"\r\n\r\n")
				start(ReadingLastBoundary, b.String(), false)
			}
		}
		if hd.boundary != "" && (part.TransferEncoding == "base64" || part.TransferEncoding == "quoted-printable") {
			var b strings.Builder
			rawHeader(&b, part.Fields, func(i int, f *Field) bool { return fieldKey(f.Name) == "content-transfer-encoding" })
			b.WriteString("\r\n")
			if a := start(ReadingDecodedMultipart, b.String(), false); a != nil {
				if part.TransferEncoding == "base64" {
					a.b64 = &b64Writer{}
					a.b64.reset(a.nest, make([]byte, 0, decodeChunk), make([]byte, decodeChunk/4*3+16))
					a.w = a.b64
				} else {
					a.qp = &qpWriter{}
					a.qp.reset(a.nest, make([]byte, decodeChunk+16))
					a.w = a.qp
				}
			}
		}
	}
	if junkLine && p.nextLineIsField() {
		var b strings.Builder
		rawHeader(&b, part.Fields, nil)
		start(ReadingSkipJunkLine, b.String(), true)
	}
	return out
}

// nextLineIsField reports whether the line after the current one (the
// junk line that ended a header) starts a header field: only then does
// skipping the junk line read another header.
func (p *parser) nextLineIsField() bool {
	for {
		b := p.in.avail()
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			rest := b[i+1:]
			if j := bytes.IndexByte(rest, '\n'); j >= 0 || p.in.eof {
				_, ok := fieldNameEnd(rest)
				return ok
			}
		} else if p.in.eof {
			return false
		}
		if !p.in.fill() {
			return true // not in the buffer: read it both ways
		}
	}
}

// endReadings ends the part's readings at raw offset end.
func (p *parser) endReadings(list []*alt, end int64) {
	for _, a := range list {
		p.endTap(a, end)
		p.finishAlt(a)
	}
}

// cteFirstToken returns the encoding a lenient reader takes from a
// Content-Transfer-Encoding value with junk after the encoding name
// ("base64;", "base64 x", "\"base64\"", "base64,7bit"), when that is not
// how mailgate read it; "" otherwise.
func cteFirstToken(cte string) string {
	switch cte {
	case "7bit", "8bit", "binary", "base64", "quoted-printable", "":
		return ""
	}
	f := strings.FieldsFunc(cte, func(r rune) bool {
		return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '"' || r == '\'' || r == '(' || r == ')'
	})
	if len(f) == 0 {
		return ""
	}
	switch f[0] {
	case "base64", "quoted-printable":
		return f[0]
	}
	return ""
}

func quoteParam(s string) string {
	return strings.NewReplacer("\\", "\\\\", "\"", "\\\"").Replace(s)
}

// epilogueHead bounds the bytes of an epilogue line looked at to tell text
// from a delimiter or a part header.
const epilogueHead = 256

// epilogue counts the bytes after a close delimiter and whether any is not
// white space, and looks at its lines: a delimiter of the multipart, or a
// first non-blank line that is a Content-* field, is where readers that go
// on after the close delimiter find parts. From there on the epilogue is
// parsed as the reading "epilogue".
type epilogue struct {
	p        *parser
	node     *node
	n        int64
	nonws    bool
	seenText bool // a non-blank line was looked at
	head     []byte
	skipping bool // in a line already looked at
	alt      *alt
}

func (e *epilogue) Write(b []byte) (int, error) {
	n := len(b)
	e.n += int64(n)
	if !e.nonws {
		for _, c := range b {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				e.nonws = true
				break
			}
		}
	}
	if e.alt != nil {
		e.alt.write(b)
		return n, nil
	}
	if e.p == nil || !e.nonws {
		return n, nil
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if e.skipping {
			if i < 0 {
				return n, nil
			}
			b = b[i+1:]
			e.skipping = false
			continue
		}
		end := len(b)
		if i >= 0 {
			end = i + 1
		}
		take := min(end, epilogueHead-len(e.head))
		e.head = append(e.head, b[:take]...)
		complete := i >= 0 && take == end
		if !complete && len(e.head) < epilogueHead {
			return n, nil
		}
		b = b[take:]
		if e.look() {
			e.alt.write(b)
			return n, nil
		}
		if !complete {
			e.skipping = true
		}
	}
	return n, nil
}

// look decides on the line in head: true when the reading started there
// (head was written to it).
func (e *epilogue) look() bool {
	line := e.head
	e.head = e.head[:0]
	blank := len(bytes.TrimSpace(line)) == 0
	if blank {
		return false
	}
	bnd := e.node.partBoundary
	delim := len(line) >= 2+len(bnd) && line[0] == '-' && line[1] == '-' && bytes.Equal(line[2:2+len(bnd)], bnd)
	field := false
	if !e.seenText && !delim {
		if c, ok := fieldNameEnd(line); ok && c >= 8 && asciiEqualFold(string(line[:8]), "content-") {
			field = true
		}
	}
	e.seenText = true
	if !delim && !field {
		return false
	}
	hdr := "Content-Type: multipart/mixed; boundary=\"" + quoteParam(string(bnd)) + "\"\r\n\r\n"
	if field {
		hdr += "--" + string(bnd) + "\r\n"
	}
	a := e.p.startAlt(ReadingEpilogue, e.node.idx, hdr, false)
	if a == nil {
		return false
	}
	a.children = true
	e.alt = a
	a.write(line)
	return true
}

// close ends the epilogue's look at its lines and reports whether it held
// parts (a delimiter or part header).
func (e *epilogue) close() bool {
	if e.alt == nil && len(e.head) > 0 && e.p != nil {
		e.look()
	}
	if e.alt == nil {
		return false
	}
	e.p.finishAlt(e.alt)
	return true
}

// startOuterReading starts the reading "outer-boundary" of the open
// multipart o, whose boundary the multipart part (whose header was just
// read) shares: from part on, o's body is parsed again with every shared
// delimiter line given to o, as Python's email package does.
func (p *parser) startOuterReading(o *node, part *Part) {
	if p.lim.outerFirst || o.outerAlt || o.boundary == nil {
		return
	}
	o.outerAlt = true
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=\"" + quoteParam(string(o.boundary)) + "\"\r\n\r\n--")
	b.Write(o.boundary)
	b.WriteString("\r\n")
	rawHeader(&b, part.Fields, nil)
	b.WriteString("\r\n")
	a := p.startAlt(ReadingOuterBoundary, o.idx, b.String(), true)
	if a == nil {
		return
	}
	a.children = true
	p.tapFrom(a)
	o.alts = append(o.alts, a)
}

// sharedDelimiter reports whether a line can be a delimiter of both
// boundaries (whole-line matching, RFC 2046 §5.1.1): they are equal, or
// one is the other plus "--", so that "--b--" closes one and delimits the
// other. A mere prefix ("=_x" and "=_x2") gives no such line.
func sharedDelimiter(outer []byte, inner string) bool {
	o := string(outer)
	return o == inner || o == inner+"--" || inner == o+"--"
}

// ReadingGuessedBoundary: a multipart without a boundary parameter, split
// by its first line that starts with "--", as clients that guess the
// boundary do.
const ReadingGuessedBoundary = "guessed-boundary"

// guesser watches the raw body of a multipart without a boundary for its
// first "--boundary" line and from there on feeds the reading
// "guessed-boundary".
type guesser struct {
	p        *parser
	idx      int
	part     *Part
	head     []byte
	skipping bool
	alt      *alt
}

func (g *guesser) Write(b []byte) (int, error) {
	n := len(b)
	if g.alt != nil {
		g.alt.write(b)
		return n, nil
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if g.skipping {
			if i < 0 {
				return n, nil
			}
			b = b[i+1:]
			g.skipping = false
			continue
		}
		end := len(b)
		if i >= 0 {
			end = i + 1
		}
		take := min(end, epilogueHead-len(g.head))
		g.head = append(g.head, b[:take]...)
		complete := i >= 0 && take == end
		if !complete && len(g.head) < epilogueHead {
			return n, nil
		}
		b = b[take:]
		if g.look() {
			g.alt.write(b)
			return n, nil
		}
		if !complete {
			g.skipping = true
		}
	}
	return n, nil
}

// look starts the reading at the line in head when it can be a delimiter.
func (g *guesser) look() bool {
	line := g.head
	g.head = g.head[:0]
	bnd := guessBoundary(line)
	if bnd == "" {
		return false
	}
	var b strings.Builder
	rawHeader(&b, g.part.Fields, func(i int, f *Field) bool { return fieldKey(f.Name) == "content-type" })
	b.WriteString("Content-Type: " + g.part.ContentType + "; boundary=\"" + quoteParam(bnd) + "\"\r\n\r\n")
	a := g.p.startAlt(ReadingGuessedBoundary, g.idx, b.String(), false)
	if a == nil {
		return false
	}
	g.alt = a
	a.write(line)
	return true
}

// guessBoundary returns the boundary a "--boundary" line declares
// (RFC 2046 §5.1.1: 1 to 70 characters, not ending in a space), "" when
// line is no such line. A close delimiter gives its boundary too.
func guessBoundary(line []byte) string {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' {
		return ""
	}
	s := strings.TrimRight(string(line[2:]), " \t\r\n")
	if t, ok := strings.CutSuffix(s, "--"); ok && t != "" {
		s = t
	}
	if s == "" || len(s) > 70 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return s
}

func (g *guesser) close() {
	if g.alt == nil && len(g.head) > 0 {
		g.look()
	}
	if g.alt != nil {
		g.p.finishAlt(g.alt)
	}
}

// teeWriter writes to both.
type teeWriter struct{ a, b io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	t.a.Write(p)
	t.b.Write(p)
	return len(p), nil
}
