package mimeparse

import (
	"io"
)

// A message/rfc822 part with a base64 or quoted-printable transfer encoding
// (RFC 2046 §5.2.1 forbids it, yet clients decode it and show the message)
// is inspected twice: its decoded bytes as a leaf, and the message they
// make, parsed by a nested Parse that reads them through an io.Pipe as they
// are decoded (still one pass, no body held). The enclosed parts are grafted
// under the part ("P.1", "P.0", "P.2.1", ...); their offsets are the
// enclosing part's, as their bytes exist only decoded.
type nested struct {
	pw   *io.PipeWriter
	done chan nestedResult
}

type nestedResult struct {
	msg   *Message
	panic any
}

// startNested starts the nested parse, or returns nil when a limit leaves
// no room for it (the part then stays a leaf, with the limit's defect).
func (p *parser) startNested(part *Part) *nested {
	return p.startNestedWith(part, p.lim.outerFirst)
}

// startNestedWith is startNested with Limits.outerFirst set as given.
func (p *parser) startNestedWith(part *Part, outerFirst bool) *nested {
	lim := p.lim
	give := p.readingsLeft - (p.readingsLeft+3)/4 // readings.go: the budget is split
	p.readingsLeft -= give
	lim.readings, lim.readingsSet = give, true
	lim.outerFirst = outerFirst
	if lim.MimeDepth > 0 {
		lim.MimeDepth -= part.Depth + 1
		if lim.MimeDepth <= 0 {
			p.partDefect(part, DefectLimitMimeDepth)
			return nil
		}
	}
	if lim.MimeParts > 0 {
		lim.MimeParts -= len(p.msg.Parts)
		if lim.MimeParts <= 0 {
			p.msgDefect(DefectLimitMimeParts)
			return nil
		}
	}
	lim.TextBytes = p.textBudget
	pr, pw := io.Pipe()
	n := &nested{pw: pw, done: make(chan nestedResult, 1)}
	go func() {
		var res nestedResult
		defer func() {
			if r := recover(); r != nil {
				res.panic = r
			}
			// unblock the writer whatever happened
			pr.CloseWithError(io.ErrClosedPipe)
			n.done <- res
		}()
		res.msg, _ = Parse(pr, lim)
	}()
	return n
}

// Write feeds decoded bytes to the nested parse. It never fails: if the
// nested parse has stopped, the bytes are dropped.
func (n *nested) Write(b []byte) (int, error) {
	n.pw.Write(b)
	return len(b), nil
}

// finishNested ends the nested parse and grafts its parts after Parts[idx]
// (the enclosed message's root becomes its child). A panic in the nested
// parse is raised again here, in the caller's goroutine, where the caller's
// recovery can see it.
func (p *parser) finishNested(idx int, n *nested) {
	part := p.msg.Parts[idx]
	n.pw.Close()
	res := <-n.done
	if res.panic != nil {
		panic(res.panic)
	}
	sub := res.msg
	p.readingsLeft += sub.readingsLeft
	base := len(p.msg.Parts)
	for _, q := range sub.Parts {
		if q.Parent < 0 {
			q.Parent = idx
		} else {
			q.Parent += base
		}
		if q.origin == originOwn {
			q.origin = originDecoded
		}
		q.Path = part.Path + "." + q.Path
		q.Depth += part.Depth + 1
		q.HeaderOffset, q.BodyOffset, q.EndOffset = part.HeaderOffset, part.BodyOffset, part.EndOffset
		for i := range q.Fields {
			q.Fields[i].Start, q.Fields[i].End = part.BodyOffset, part.BodyOffset
		}
		p.msg.Parts = append(p.msg.Parts, q)
	}
	for _, d := range sub.Defects {
		p.msgDefect(d)
	}
	p.addText(sub.Text)
	part.IsAttachment = false
}
