package rules

import (
	"cmp"
	"fmt"
	"strings"

	"mailgate/mimeparse"
)

// stripTarget is one part to replace by a notice, with every file and rule
// that asked for it.
type stripTarget struct {
	part  *mimeparse.Part
	root  bool // the part's header is the message header (Parts[0])
	files []string
	rules []string
}

func (p *planner) strips(strips []Strip) {
	if len(strips) == 0 {
		return
	}
	parts := p.msg.Parts
	byPath := make(map[string]int, len(parts))
	for i, pt := range parts {
		if _, dup := byPath[pt.Path]; !dup {
			byPath[pt.Path] = i
		}
	}
	// A part found inside a body (uuencode, TNEF, the parts of an encoded
	// message/rfc822) has no bytes of its own in the raw message: the part
	// that carries it is what gets replaced. So is a part of another
	// reading of an ambiguous message (Part.Reading, mimeparse/readings.go):
	// replacing its carrier removes its bytes from every reading.
	targets := map[int]*stripTarget{}
	for _, s := range strips {
		i, ok := byPath[s.Path]
		if !ok {
			continue
		}
		c := p.msg.Carrier(i)
		t := targets[c]
		if t == nil {
			pt := parts[c]
			if pt.EndOffset < pt.BodyOffset || pt.BodyOffset < pt.HeaderOffset {
				continue
			}
			t = &stripTarget{part: pt, root: c == 0}
			targets[c] = t
		}
		name := s.Filename
		if name == "" {
			name = parts[i].Filename
		}
		t.files = appendUnique(t.files, name)
		t.rules = appendUnique(t.rules, s.Rule)
	}
	// In message order; a part inside one already stripped is covered by
	// that part's notice.
	for c := range parts {
		if t := targets[c]; t != nil && !strippedAbove(parts, c, targets) {
			p.stripPart(t)
		}
	}
}

// strippedAbove reports whether a part enclosing parts[i] is a target.
func strippedAbove(parts []*mimeparse.Part, i int, targets map[int]*stripTarget) bool {
	for up := parts[i].Parent; up >= 0 && up < i; i, up = up, parts[up].Parent {
		if targets[up] != nil {
			return true
		}
	}
	return false
}

// stripPart deletes the part's Content-* fields, inserts the notice's
// fields where the first of them stood, and replaces the body by the notice.
func (p *planner) stripPart(t *stripTarget) {
	pt := t.part
	fields := pt.Fields
	if t.root {
		fields = p.fields
	}
	eol := cmp.Or(mimeparse.HeaderLineBreak(fields), p.eol)
	at := int64(-1)
	for _, f := range fields {
		if len(f.Name) >= 8 && strings.EqualFold(f.Name[:8], "Content-") {
			if at < 0 {
				at = f.Start
			}
			p.deleteField(f)
		}
	}
	if at < 0 {
		at = pt.HeaderOffset
		if len(fields) > 0 {
			at = fields[len(fields)-1].End
		}
	}
	hdr := "Content-Type: text/plain; charset=utf-8" + eol +
		"Content-Transfer-Encoding: quoted-printable" + eol +
		"Content-Disposition: inline" + eol
	if t.root && !hasField(fields, "MIME-Version") {
		hdr = "MIME-Version: 1.0" + eol + hdr
	}
	body := qpLines(noticeLines(t), eol)
	// A header that ran straight into the body or the next boundary (no
	// empty line) gets one, so the notice is not read as header.
	headerEnd := pt.HeaderOffset
	if len(fields) > 0 {
		headerEnd = fields[len(fields)-1].End
	}
	if pt.BodyOffset <= headerEnd {
		body = eol + body
	}
	// The notice ends with its own line break. Where EndOffset stops before
	// the break that precedes the next boundary (a leaf with a body) this
	// adds an empty last line to the notice; where nothing is left before
	// the boundary (an empty body, whose break belongs to the header, or a
	// container, whose end includes the break) it keeps the boundary on a
	// line of its own. Always safe, whatever the part's shape.
	body += eol
	p.edits = append(p.edits,
		mimeparse.Edit{Start: at, End: at, Data: []byte(hdr)},
		mimeparse.Edit{Start: pt.BodyOffset, End: pt.EndOffset, Data: []byte(body)},
	)
}

// noticeLines is the text that replaces a stripped part.
func noticeLines(t *stripTarget) []string {
	var lines []string
	for _, f := range t.files {
		if f == "" {
			lines = append(lines, fmt.Sprintf("An attachment (part %s) was removed from this message.", t.part.Path))
			continue
		}
		lines = append(lines, fmt.Sprintf("The attachment %q was removed from this message.", safeName(f)))
	}
	lines = append(lines, "Removed by mailgate, rule "+strings.Join(t.rules, ", ")+".")
	return lines
}

// safeName drops control characters, bidi overrides included, so the
// notice shows the name as stored rather than as it would render.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r < 32, r == 127, r >= 0x80 && r < 0xa0:
			return -1
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return -1
		}
		return r
	}, s)
}

// qpLines encodes lines as quoted-printable (RFC 2045 §6.7) joined by eol,
// without a final line break.
func qpLines(lines []string, eol string) string {
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i, l := range lines {
		if i > 0 {
			b.WriteString(eol)
		}
		width := 0
		for j := 0; j < len(l); j++ {
			c := l[j]
			enc := c == '=' || c < 32 || c > 126 || (c == ' ' && j == len(l)-1)
			n := 1
			if enc {
				n = 3
			}
			if width+n > 75 {
				b.WriteString("=" + eol)
				width = 0
			}
			if enc {
				b.WriteByte('=')
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
			width += n
		}
	}
	return b.String()
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func hasField(fs []mimeparse.Field, name string) bool {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}
