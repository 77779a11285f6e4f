package mimeparse

import (
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
}

func (s *leafSink) Write(p []byte) (int, error) {
	s.insp.Write(p)
	if s.also != nil {
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
	*l = leaf{}
	l.sink.insp = inspect.New(p.inspectOptions(part))
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
	res := l.sink.insp.Close()
	p.applyResult(part, res)
	if len(l.sink.text) > 0 {
		p.textBuf = l.sink.text[:0]
		t, ok := toUTF8(part.Charset, l.sink.text)
		if !ok {
			p.partDefect(part, DefectUnknownCharset)
		}
		p.addText(t)
	}
	if typeMismatch(part.ContentType, res.DetectedType, res.Executable) {
		p.partDefect(part, DefectTypeMismatch)
	}
	p.embedded(idx, res.Embedded)
}

func (p *parser) applyResult(part *Part, res inspect.Result) {
	part.Size = res.Size
	part.SHA256 = res.SHA256
	part.DetectedType = res.DetectedType
	part.Executable = res.Executable
	part.Encrypted = res.Encrypted
	part.Macros = res.Macros
	part.Archive = append(part.Archive, res.Archive...)
	for _, d := range res.Defects {
		p.partDefect(part, d)
	}
}

// embedded adds the files found inside the body of Parts[idx] (uuencode
// blocks, TNEF attachments) as leaves of their own: "<leaf>.u1", "<leaf>.t1".
func (p *parser) embedded(idx int, list []inspect.Embedded) {
	part := p.msg.Parts[idx]
	nu, nt := 0, 0
	for _, e := range list {
		var path string
		switch e.Kind {
		case 'u':
			nu++
			path = part.Path + ".u" + itoa(nu)
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
	if len(p.texts) > 0 {
		p.textBudget-- // the "\n" that joins them
	}
	if len(t) > p.textBudget {
		t = strings.ToValidUTF8(t[:max(p.textBudget, 0)], "")
	}
	p.texts = append(p.texts, t)
	p.textBudget -= len(t)
}
