package mimeparse

import (
	"bytes"
	"io"

	"mailgate/mimeparse/inspect"
	"strconv"
	"strings"
	"sync"
)

// Parse reads the raw message from r to its end in one pass and describes it.
// Malformed MIME never fails the parse: anomalies become defects. The error
// is only ever a read error from r (the Message is then still usable for
// what was read).
//
// Bodies are never held: each leaf's bytes go through the transfer decoder
// into the inspectors (package inspect) as they are read, so memory does not
// grow with the message. The walk is iterative, with an explicit stack of
// open containers.
//
// Paths are IMAP section numbers (RFC 3501 §6.4.5): a multipart root is
// "0" and its children "1", "2", ...; a message whose body is not multipart
// has the single part "1". A message/rfc822 (or message/global) part at P is
// a container whose one child is the enclosed message: "P.0" when that is
// multipart (its children are "P.1", "P.2", as in IMAP), else "P.1".
func Parse(r io.Reader, lim Limits) (*Message, error) {
	if lim.budget == nil {
		lim.budget = inspect.NewBudget(lim.DecompressedBytes)
	}

	p := &parser{
		lim:          lim,
		msg:          &Message{},
		textBudget:   lim.TextBytes,
		readingsLeft: maxReadings,
	}
	if lim.readingsSet {
		p.readingsLeft = lim.readings
	}
	bufs := bufPool.Get().(*buffers)
	defer bufPool.Put(bufs)
	p.in.rd = r
	p.in.buf = bufs.in
	p.pendBuf = bufs.pend[:0]
	p.outBuf = bufs.out
	p.textBuf = bufs.text[:0]
	p.fieldBuf = bufs.field[:0]
	p.run()
	p.finish()
	if cap(p.textBuf) <= 1<<20 {
		bufs.text = p.textBuf[:0]
	}
	if cap(p.fieldBuf) <= 1<<20 {
		bufs.field = p.fieldBuf[:0]
	}
	return p.msg, p.in.err
}

// buffers are the fixed working buffers of one parse, reused across parses
// (nothing in a Message points into them).
type buffers struct {
	in, pend, out, text []byte
	field               []byte // the raw header field being read (endField copies what it keeps)
}

var bufPool = sync.Pool{New: func() any {
	return &buffers{
		in:   make([]byte, bufSize),
		pend: make([]byte, 0, decodeChunk),
		out:  make([]byte, decodeChunk/4*3+16),
	}
}}

// node is an open container on the parser's stack.
type node struct {
	part     *Part
	idx      int    // the part's index in Message.Parts
	boundary []byte // the delimiter being looked for; nil for message containers and after the close delimiter
	prefix   string // path prefix of the children ("" for the top multipart, "2." inside part 2)
	nchild   int
	preamble bool          // before the first delimiter
	pre      *preambleSink // the preamble, inspected in case no delimiter ever comes
	epi      *epilogue     // after the close delimiter
	digest   bool          // multipart/digest: children default to message/rfc822
	msgBase  string        // message containers: base of the enclosed message's paths
	// partBoundary is the multipart's boundary, kept after the close
	// delimiter (the epilogue looks for it).
	partBoundary []byte
	alts         []*alt // alternative readings of the container, ended where it ends
	outerAlt     bool   // the reading "outer-boundary" of this multipart started
}

// entity says where the next part's header starts and what it belongs to.
type entity struct {
	parent *node // nil for the top-level message
	base   string
	isRoot bool // the root of a (possibly enclosed) message
	depth  int
}

type parser struct {
	in         input
	lim        Limits
	msg        *Message
	stack      []*node
	bounds     [][]byte  // scanBody's view of the stack's boundaries, reused
	boundsBuf  [8][]byte // room for bounds without an allocation
	textBudget int
	textBuf    []byte

	b64     b64Writer
	qp      qpWriter
	pendBuf []byte
	outBuf  []byte
	leafBuf leaf
	limited bool            // limit-mime-parts hit
	nfields int             // header fields kept so far (maxTotalFields)
	text    strings.Builder // decoded text of text/* leaves, joined by "\n": Message.Text
	nTexts  int             // leaves in text

	nreadings    int     // alternative readings grafted so far (their paths "P.rK")
	readingsLeft int     // readings this parse may still start (readings.go)
	fieldBuf     []byte  // headerState.cur, reused from field to field and block to block
	fieldSlab    []Field // room for the next header blocks' fields: one allocation for several blocks
}

// fieldSlabSize is how many Fields one slab holds: the header blocks of a
// small message (its own fields and those of a few parts) share one.
const fieldSlabSize = 16

// headerFields returns the empty Field slice a header block appends to.
func (p *parser) headerFields() []Field {
	if cap(p.fieldSlab) < 4 {
		p.fieldSlab = make([]Field, 0, fieldSlabSize)
	}
	return p.fieldSlab[:0]
}

// keepFields ends a header block read into f (from headerFields): the
// block keeps its fields, capacity cut so that nothing appended to one
// block's Fields writes into the next, and the slab moves past them.
func (p *parser) keepFields(f []Field) []Field {
	n := len(f)
	if n == 0 {
		return nil
	}
	if n <= cap(p.fieldSlab) {
		// no append outgrew the slab: f lies at its start
		p.fieldSlab = p.fieldSlab[n:n]
	}
	return f[:n:n]
}

func (p *parser) run() {
	next := entity{isRoot: true}
	for {
		m, ok := p.entity(next)
		if !ok {
			// a container was opened: its first child's header follows
			top := p.stack[len(p.stack)-1]
			next = entity{parent: top, base: top.msgBase, isRoot: true, depth: top.part.Depth + 1}
			continue
		}
		for {
			if m.node < 0 {
				p.closeAbove(-1, m.end, m.lineBreak())
				return
			}
			p.closeAbove(m.node, m.end, m.lineBreak())
			n := p.stack[m.node]
			if n.preamble && m.isClose {
				// A close delimiter before any other: no parts. Python takes
				// the preamble as the body; so do we (missing-start-boundary).
				p.noParts(n, m.lineBreak())
			} else if n.preamble {
				n.preamble = false
				n.pre.discard() // a delimiter came: the preamble was only a preamble
				n.pre = nil
			}
			if !m.isClose {
				p.skipDelimiters(n)
				next = entity{parent: n, base: n.prefix, depth: n.part.Depth + 1}
				break
			}
			n.boundary = nil
			n.epi = &epilogue{p: p, node: n}
			m = p.scanBody(n.epi, m.lineBrk)
		}
	}
}

// skipDelimiters drops repeated delimiter lines: Python's reading of the
// RFC 2046 grammar creates no part between them.
func (p *parser) skipDelimiters(n *node) {
	for {
		line, _ := p.in.line()
		if isClose, ok := matchDelimiter(line, n.boundary); !ok || isClose {
			return
		}
		p.partDefect(n.part, DefectEmptyPart)
		p.in.advance(len(line))
	}
}

// entity reads one part's header and either scans its body (ok: m says
// where it ended) or opens it as a container (ok false: its first child
// starts at the current position).
func (p *parser) entity(e entity) (m scanEnd, ok bool) {
	if p.lim.MimeParts > 0 && len(p.msg.Parts) >= p.lim.MimeParts {
		if !p.limited {
			p.limited = true
			p.msgDefect(DefectLimitMimeParts)
		}
		return p.scanBody(discard{}, 0), true
	}
	part := &Part{Depth: e.depth, HeaderOffset: p.in.off, Parent: -1}
	if e.parent != nil {
		part.Parent = e.parent.idx
	}
	h := headerState{cur: p.fieldBuf[:0], fields: p.headerFields()}
	h.keepLate = e.parent == nil
	ended, hm := p.readHeader(&h)
	p.fieldBuf = h.cur[:0]
	h.fields = p.keepFields(h.fields)
	part.Fields = h.fields
	p.nfields += len(h.fields)
	part.BodyOffset = p.in.off
	if ended {
		part.BodyOffset = hm.end
	}
	junkLine := false
	for _, d := range h.defects {
		p.partDefect(part, d)
		junkLine = junkLine || d == DefectMissingHeaderBodySeparator
	}
	defaultType := "text/plain"
	if e.parent != nil && e.parent.digest {
		defaultType = "message/rfc822" // RFC 2046 §5.1.5
	}
	hd := p.describe(part, defaultType)
	idx := len(p.msg.Parts)
	p.msg.Parts = append(p.msg.Parts, part)
	if e.parent == nil {
		p.msg.Fields = h.fields
		p.msg.HeaderTruncated = h.dropped > 0
		p.msg.late = h.late
	}

	// Classify: multipart, enclosed message, or leaf.
	kind := kindLeaf
	switch {
	case strings.HasPrefix(part.ContentType, "multipart/"):
		if part.TransferEncoding == "base64" || part.TransferEncoding == "quoted-printable" {
			p.partDefect(part, DefectEncodedMultipart)
		}
		if hd.boundary == "" {
			p.partDefect(part, DefectMultipartWithoutBoundary)
		} else if p.lim.MimeDepth > 0 && e.depth >= p.lim.MimeDepth {
			p.partDefect(part, DefectLimitMimeDepth)
		} else {
			kind = kindMultipart
		}
	case isMessageType(part.ContentType):
		switch part.TransferEncoding {
		case "base64", "quoted-printable":
			p.partDefect(part, DefectEncodedMessage)
		default:
			if p.lim.MimeDepth > 0 && e.depth >= p.lim.MimeDepth {
				p.partDefect(part, DefectLimitMimeDepth)
			} else {
				kind = kindMessage
			}
		}
	}
	if ended && kind != kindLeaf {
		// the header ran into a delimiter: there is no body to hold parts
		if kind == kindMultipart {
			p.partDefect(part, DefectEmptyMultipart)
		}
		kind = kindLeaf
	}
	p.setPath(part, e, kind)
	if kind != kindLeaf {
		part.IsMultipart = kind == kindMultipart
		part.IsAttachment = false
	}
	if ended {
		part.EndOffset = hm.end
		if kind == kindLeaf {
			l := p.startLeaf(part)
			p.finishLeaf(idx, l)
		}
		return hm, true
	}
	alts := p.startReadings(idx, part, hd, junkLine)
	switch kind {
	case kindMultipart:
		for _, o := range p.stack {
			if o.boundary != nil && (bytes.HasPrefix(o.boundary, []byte(hd.boundary)) || strings.HasPrefix(hd.boundary, string(o.boundary))) {
				// RFC 2046 §5.1.2: an inner boundary must not be a prefix of
				// an outer one (or equal). Readers disagree on who owns the
				// line; we give it to the innermost, Python to the outer,
				// whose reading is parsed too ("outer-boundary").
				p.partDefect(part, DefectAmbiguousBoundary)
				if sharedDelimiter(o.boundary, hd.boundary) {
					p.startOuterReading(o, part)
				}
			}
		}
		bnd := []byte(hd.boundary)
		n := &node{
			part:         part,
			idx:          idx,
			boundary:     bnd,
			partBoundary: bnd,
			preamble:     true,
			digest:       part.ContentType == "multipart/digest",
			alts:         alts,
		}
		if part.Path == "0" || strings.HasSuffix(part.Path, ".0") {
			n.prefix = e.base
		} else {
			n.prefix = part.Path + "."
		}
		n.pre = &preambleSink{opts: p.inspectOptions(part)}
		p.stack = append(p.stack, n)
		m := p.scanBody(n.pre, 0)
		return m, true
	case kindMessage:
		n := &node{part: part, idx: idx, msgBase: part.Path + ".", alts: alts}
		p.stack = append(p.stack, n)
		return scanEnd{}, false
	}
	l := p.startLeaf(part)
	var nest *nested
	if isMessageType(part.ContentType) && slicesContains(part.Defects, DefectEncodedMessage) {
		if nest = p.startNested(part); nest != nil {
			l.sink.also = nest
		}
	}
	var body io.Writer = l.dec
	var guess *guesser
	if hd.boundary == "" && part.Defects != nil && slicesContains(part.Defects, DefectMultipartWithoutBoundary) {
		guess = &guesser{p: p, idx: idx, part: part}
		body = teeWriter{l.dec, guess}
	}
	m = p.scanBody(body, 0)
	part.EndOffset = m.end
	p.finishLeaf(idx, l)
	if nest != nil {
		p.finishNested(idx, nest)
	}
	if guess != nil {
		guess.close()
	}
	p.endReadings(alts, m.end)
	return m, true
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isMessageType reports whether a part of this type encloses a message
// that is parsed as such: message/rfc822, message/global (RFC 6532) and the
// obsolete message/news (RFC 5537 §3: to be treated as message/rfc822).
func isMessageType(ct string) bool {
	return ct == "message/rfc822" || ct == "message/global" || ct == "message/news"
}

const (
	kindLeaf = iota
	kindMultipart
	kindMessage
)

func (p *parser) setPath(part *Part, e entity, kind int) {
	switch {
	case e.isRoot && kind == kindMultipart:
		part.Path = e.base + "0"
	case e.isRoot:
		part.Path = e.base + "1"
	default:
		e.parent.nchild++
		part.Path = e.base + strconv.Itoa(e.parent.nchild)
	}
	if e.base == "" && e.isRoot && kind == kindMultipart {
		part.Path = "0"
	}
}

// closeAbove closes every open container above stack index k (all of them
// for k = -1) at raw offset end.
func (p *parser) closeAbove(k int, end int64, brk []byte) {
	for len(p.stack)-1 > k {
		n := p.stack[len(p.stack)-1]
		p.stack = p.stack[:len(p.stack)-1]
		n.part.EndOffset = end
		if k < 0 && len(p.stack) == 0 {
			n.part.EndOffset = p.in.off
		}
		switch {
		case n.preamble:
			p.noParts(n, brk)
		case n.boundary != nil:
			p.partDefect(n.part, DefectMissingFinalBoundary)
		case n.epi != nil && n.epi.close():
			p.partDefect(n.part, DefectBytesAfterFinalBoundary)
		case n.epi != nil && n.epi.nonws:
			p.partDefect(n.part, DefectEpilogueText)
		}
		p.endReadings(n.alts, n.part.EndOffset)
	}
}

// preambleSink inspects a multipart's preamble, in case no delimiter ever
// comes and it is the body. The inspector starts with the first byte: most
// preambles are empty.
type preambleSink struct {
	opts  inspect.Options
	insp  *inspect.Inspector
	nonws bool // a byte other than white space was written
}

func (s *preambleSink) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if !s.nonws {
		s.nonws = len(bytes.TrimLeft(b, " \t\r\n")) > 0
	}
	if s.insp == nil {
		s.insp = inspect.New(s.opts)
	}
	return s.insp.Write(b)
}

func (s *preambleSink) close() inspect.Result {
	if s.insp == nil {
		s.insp = inspect.New(s.opts)
	}
	return s.insp.Close()
}

func (s *preambleSink) discard() {
	if s.insp != nil {
		s.insp.Close()
	}
}

// noParts turns a multipart whose delimiter never came into a leaf: what a
// client shows is this text, so it is inspected as the body. The line break
// before the next delimiter stays in it (as in Python: it is not a part's).
func (p *parser) noParts(n *node, brk []byte) {
	n.preamble = false
	n.pre.Write(brk)
	if n.pre.nonws {
		p.partDefect(n.part, DefectMissingStartBoundary)
	} else {
		p.partDefect(n.part, DefectEmptyMultipart)
	}
	n.part.IsMultipart = false
	res := n.pre.close()
	n.pre = nil
	p.applyResult(n.part, res)
}

func (p *parser) partDefect(part *Part, d string) {
	for _, x := range part.Defects {
		if x == d {
			return
		}
	}
	part.Defects = append(part.Defects, d)
}

func (p *parser) msgDefect(d string) {
	for _, x := range p.msg.Defects {
		if x == d {
			return
		}
	}
	p.msg.Defects = append(p.msg.Defects, d)
}

// finish sets the sizes and collects every part's defects into the message.
func (p *parser) finish() {
	p.msg.Size = p.in.off
	p.msg.Text = p.text.String()
	p.msg.readingsLeft = p.readingsLeft
	if len(p.msg.Parts) > 0 {
		p.msg.Parts[0].EndOffset = p.in.off
	}
	for i, part := range p.msg.Parts {
		if part.origin == originReading && part.Reading != "" {
			// grafted before their carrier's end was final (the root's)
			c := p.msg.Parts[p.msg.Carrier(i)]
			part.HeaderOffset, part.BodyOffset, part.EndOffset = c.HeaderOffset, c.BodyOffset, c.EndOffset
		}
		for _, d := range part.Defects {
			p.msgDefect(d)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
