package mimeparse

import (
	"bytes"
	"io"
	"strings"

	"mailgate/mimeparse/inspect"
)

// leafSink receives one leaf's decoded body: it feeds the inspector and
// keeps the first bytes of text/* bodies for Message.Text.
type leafSink struct {
	insp *inspect.Inspector
	also io.Writer // a nested parse of an encoded message/rfc822, or nil
	text []byte
	keep int // bytes of text still wanted

	// Messages by content: the first bytes of a leaf not declared as a
	// message, kept until they say whether it is one (see sniffMessage).
	sniff     []byte
	sniffing  bool
	byContent *nested // the nested parse started because the bytes are a message
	p         *parser
	part      *Part
}

// sniffHead is how many first bytes of a leaf are looked at to tell a
// message by its content.
const sniffHead = 1024

// decideMessage starts a nested parse of the leaf when its first bytes are
// a message header, and feeds it those bytes.
func (s *leafSink) decideMessage() {
	s.sniffing = false
	if !looksLikeMessage(s.sniff, s.part.Ext == "eml") {
		return
	}
	if n := s.p.startNested(s.part); n != nil {
		s.byContent = n
		s.also = n
		n.Write(s.sniff)
	}
}

func (s *leafSink) Write(p []byte) (int, error) {
	s.insp.Write(p)
	if s.sniffing {
		n := min(len(p), sniffHead-len(s.sniff))
		s.sniff = append(s.sniff, p[:n]...)
		if len(s.sniff) == sniffHead {
			s.decideMessage()
			if s.byContent != nil && n < len(p) {
				s.also.Write(p[n:])
			}
		}
	} else if s.also != nil {
		s.also.Write(p)
	}
	if s.keep > 0 {
		n := min(len(p), s.keep)
		s.text = append(s.text, p[:n]...)
		s.keep -= n
	}
	return len(p), nil
}

// leaf streams one leaf's body through its transfer decoding into the
// inspectors, and fills the part from what they found.
type leaf struct {
	sink leafSink
	dec  io.Writer
	cte  string // "base64", "quoted-printable" or "" (identity)
	// sniffBuf is the room for leafSink.sniff, kept from leaf to leaf.
	sniffBuf []byte
}

func (p *parser) inspectOptions(part *Part) inspect.Options {
	return inspect.Options{
		ArchiveDepth:   p.lim.ArchiveDepth,
		ArchiveEntries: p.lim.ArchiveEntries,
		Spill:          p.lim.InspectSpill,
		SpillDir:       p.lim.SpillDir,
		ArchiveDict:    p.lim.ArchiveDict,
		Budget:         p.lim.budget,
		Text:           strings.HasPrefix(part.ContentType, "text/") || isUUEncodeCTE(part.TransferEncoding),
		Name:           part.Filename,
		Declared:       part.ContentType,
		NoHash:         p.lim.NoHash,
	}
}

// isUUEncodeCTE reports the non-standard uuencode transfer encodings
// (RFC 1341 era, still decoded by Python and some clients): the body is
// scanned for uuencode blocks, each found file a leaf of its own ("P.u1").
func isUUEncodeCTE(cte string) bool {
	switch cte {
	case "x-uuencode", "uuencode", "x-uue", "uue":
		return true
	}
	return false
}

// startLeaf prepares the decoding pipeline for part's body.
func (p *parser) startLeaf(part *Part) *leaf {
	l := &p.leafBuf
	*l = leaf{sniffBuf: l.sniffBuf}
	l.sink.insp = inspect.New(p.inspectOptions(part))
	// Messages by content: any leaf not declared as text or message, and a
	// text part named .eml. (A text part is read as text by every client;
	// a mail client opens a .eml whatever its declared type.)
	if !isMessageType(part.ContentType) && (part.Ext == "eml" || !strings.HasPrefix(part.ContentType, "text/")) {
		l.sink.sniffing, l.sink.p, l.sink.part = true, p, part
		if l.sniffBuf == nil {
			l.sniffBuf = make([]byte, 0, sniffHead)
		}
		l.sink.sniff = l.sniffBuf[:0]
	}
	if strings.HasPrefix(part.ContentType, "text/") {
		l.sink.keep = p.textBudget
		l.sink.text = p.textBuf[:0]
	}
	switch part.TransferEncoding {
	case "base64":
		p.b64.reset(&l.sink, p.pendBuf, p.outBuf)
		l.dec, l.cte = &p.b64, "base64"
	case "quoted-printable":
		p.qp.reset(&l.sink, p.outBuf)
		l.dec, l.cte = &p.qp, "quoted-printable"
	default:
		l.dec = &l.sink
	}
	return l
}

// finishLeaf closes the pipeline and copies the inspectors' findings into
// Parts[idx].
func (p *parser) finishLeaf(idx int, l *leaf) {
	part := p.msg.Parts[idx]
	switch l.cte {
	case "base64":
		for _, d := range p.b64.close() {
			p.partDefect(part, d)
		}
	case "quoted-printable":
		for _, d := range p.qp.close() {
			p.partDefect(part, d)
		}
	}
	if l.sink.sniffing && len(l.sink.sniff) > 0 {
		l.sink.decideMessage()
	}
	res := l.sink.insp.Close()
	p.applyResult(part, res)
	if len(l.sink.text) > 0 {
		p.textBuf = l.sink.text[:0]
		if b, ok := utf8As(part.Charset, l.sink.text); ok {
			p.addTextBytes(b)
		} else {
			t, ok := toUTF8(part.Charset, l.sink.text)
			if !ok {
				p.partDefect(part, DefectUnknownCharset)
			}
			p.addText(t)
		}
	}
	if typeMismatch(part.ContentType, res.DetectedType, res.Executable) {
		p.partDefect(part, DefectTypeMismatch)
	}
	p.embedded(idx, res.Embedded)
	if l.sink.byContent != nil {
		// The part stays the leaf it was declared as (an attachment, in
		// Attachments), and the message inside is read too.
		att := part.IsAttachment
		p.finishNested(idx, l.sink.byContent)
		part.IsAttachment = att
		p.partDefect(part, DefectMessageByContent)
	}
}

// looksLikeMessage reports whether the first bytes of a body are a message
// header: header field lines from the first line on, at least three of
// them (two when the part is named .eml), among them From, a Received
// trace or a Message-ID, and Date or Subject (or MIME-Version).
func looksLikeMessage(b []byte, named bool) bool {
	var from, id, other bool
	fields := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break // a cut line: not counted
		}
		line := bytes.TrimRight(b[:i], "\r")
		b = b[i+1:]
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if fields == 0 {
				return false
			}
			continue
		}
		c := bytes.IndexByte(line, ':')
		if c <= 0 || c > 76 {
			return false
		}
		for _, ch := range line[:c] {
			if ch <= ' ' || ch >= 127 {
				return false
			}
		}
		fields++
		switch strings.ToLower(string(line[:c])) {
		case "from", "sender", "return-path":
			from = true
		case "received", "message-id", "delivered-to", "x-received":
			id = true
		case "date", "subject", "mime-version", "to":
			other = true
		}
	}
	need := 3
	if named {
		need = 2
	}
	return fields >= need && (from || id) && other
}

func (p *parser) applyResult(part *Part, res inspect.Result) {
	part.Size = res.Size
	part.SHA256 = res.SHA256
	part.DetectedType = res.DetectedType
	part.Executable = res.Executable
	part.Encrypted = res.Encrypted
	part.Macros = res.Macros
	part.Active = res.Active
	part.Archive = append(part.Archive, res.Archive...)
	for _, d := range res.Defects {
		p.partDefect(part, d)
	}
}

// embedded adds the files found inside the body of Parts[idx] (uuencode
// blocks, TNEF attachments, files carried by documents) as leaves of their
// own: "<leaf>.u1", "<leaf>.t1", "<leaf>.e1". They have the offsets of the
// part that carries them: their bytes exist only decoded, and stripping one
// strips its carrier (rules/rewrite_strip.go).
func (p *parser) embedded(idx int, list []inspect.Embedded) {
	part := p.msg.Parts[idx]
	nu, nt, ne := 0, 0, 0
	for _, e := range list {
		var path string
		switch e.Kind {
		case 'u':
			nu++
			path = part.Path + ".u" + itoa(nu)
		case 'e':
			ne++
			path = part.Path + ".e" + itoa(ne)
		default:
			nt++
			path = part.Path + ".t" + itoa(nt)
		}
		ct := e.Result.DetectedType
		if ct == "" {
			ct = "application/octet-stream"
		}
		// A uuencode "begin" line or a TNEF attribute may carry raw 8-bit
		// bytes: names are UTF-8 everywhere else, so here too (the
		// extension, what policies match on, is ASCII either way).
		e.Name = strings.ToValidUTF8(e.Name, "\uFFFD")
		c := &Part{
			Path:         path,
			Depth:        part.Depth + 1,
			Parent:       idx,
			origin:       originFound,
			ContentType:  ct,
			Filename:     e.Name,
			Ext:          extOf(e.Name),
			IsAttachment: true,
			HeaderOffset: part.HeaderOffset,
			BodyOffset:   part.BodyOffset,
			EndOffset:    part.EndOffset,
		}
		if e.Name != "" {
			nameDefects(e.Name, func(d string) { p.partDefect(c, d) })
		}
		p.applyResult(c, e.Result)
		p.msg.Parts = append(p.msg.Parts, c)
		p.embedded(len(p.msg.Parts)-1, e.Result.Embedded)
	}
}

func (p *parser) addText(t string) {
	if p.textBudget <= 0 || t == "" {
		return
	}
	if p.nTexts > 0 {
		p.textBudget-- // the "\n" that joins them
		p.text.WriteByte('\n')
	}
	if len(t) > p.textBudget {
		t = strings.ToValidUTF8(t[:max(p.textBudget, 0)], "")
	}
	p.nTexts++
	p.text.WriteString(t)
	p.textBudget -= len(t)
}

// addTextBytes is addText for a leaf's text that is valid UTF-8 already:
// its bytes go into Message.Text with one copy.
func (p *parser) addTextBytes(t []byte) {
	if p.textBudget <= 0 || len(t) == 0 {
		return
	}
	if len(t) >= p.textBudget {
		p.addText(string(t)) // the rare cut: addText keeps it valid UTF-8
		return
	}
	if p.nTexts > 0 {
		p.textBudget--
		p.text.WriteByte('\n')
	}
	p.nTexts++
	p.text.Write(t)
	p.textBudget -= len(t)
}
