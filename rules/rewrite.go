package rules

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"mime"
	"sort"
	"strings"

	"mailgate/mimeparse"
)

// The rewriter turns a verdict's Edits into byte splices over the original
// message (docs/DEVELOPING.md rule 9: edits are a plan applied to the
// original bytes). Every
// byte outside the spliced ranges stays identical, so untouched header fields
// and parts keep their DKIM hashes.

// Rewrite streams raw (read once, sequentially) to w with the plan applied.
//
// When msg.HeaderTruncated (more top-level fields than Message.Fields
// holds: past 5,000 fields or limits.header_bytes), the edits must still
// see every field, or a spoofed field past the index would survive a
// remove and a late Subject would get a second Subject beside it. Rewrite
// then reads the top-level header block first (Parts[0].BodyOffset bytes,
// at most maxRescan), re-reads it with mimeparse.ScanHeader, plans over
// every field, and splices the block and the rest of raw. A block past
// maxRescan is refused with ErrHeaderTooLarge before anything is written
// (the proxy tempfails: fail closed).
func Rewrite(w io.Writer, raw io.Reader, msg *mimeparse.Message, ed *Edits) (int64, error) {
	if msg == nil || ed == nil || ed.Empty() || !msg.HeaderTruncated || len(msg.Parts) == 0 {
		return mimeparse.Splice(w, raw, Plan(msg, ed))
	}
	n := msg.Parts[0].BodyOffset
	if n < 0 || n > maxRescan {
		return 0, fmt.Errorf("%w: %d bytes", ErrHeaderTooLarge, n)
	}
	block := make([]byte, n)
	if _, err := io.ReadFull(raw, block); err != nil {
		return 0, fmt.Errorf("rules: reading the header block to edit: %w", err)
	}
	fields, err := allFields(block, msg, ed)
	if err != nil {
		return 0, err
	}
	return mimeparse.Splice(w, io.MultiReader(bytes.NewReader(block), raw), planFields(msg, fields, ed))
}

// PlanBlock is the plan Rewrite applies, for a front-end that sends the
// edits as operations rather than bytes (the milter, docs/DESIGN.md
// "Milter mode"): Plan over msg.Fields, or, when the parse could not
// index every top-level field (HeaderTruncated), over every field of
// block, the top-level header block (Parts[0].BodyOffset bytes), which
// block is called for only then.
func PlanBlock(msg *mimeparse.Message, ed *Edits, block func() ([]byte, error)) ([]mimeparse.Edit, error) {
	if msg == nil || ed == nil || ed.Empty() || !msg.HeaderTruncated || len(msg.Parts) == 0 {
		return Plan(msg, ed), nil
	}
	if n := msg.Parts[0].BodyOffset; n < 0 || n > maxRescan {
		return nil, fmt.Errorf("%w: %d bytes", ErrHeaderTooLarge, n)
	}
	b, err := block()
	if err != nil {
		return nil, fmt.Errorf("rules: reading the header block to edit: %w", err)
	}
	fields, err := allFields(b, msg, ed)
	if err != nil {
		return nil, err
	}
	return planFields(msg, fields, ed), nil
}

// maxRescan bounds the top-level header block Rewrite re-reads when the
// parse could not index it all (it is held in memory while it is read).
var maxRescan int64 = 16 << 20 // a variable for the tests

// ErrHeaderTooLarge is returned (wrapped) by Rewrite for a message whose
// header it would have to edit but cannot index: nothing is written.
var ErrHeaderTooLarge = errors.New("rules: header too large to edit")

// allFields re-reads the top-level header block and returns the fields the
// planner needs: those Message.Fields would hold (the first 5,000: the
// insertion point and the line-break style come from them), every field
// an edit names (set, remove, Subject for subject_prefix, Content-* and
// MIME-Version for a strip of the root), and the last field.
func allFields(block []byte, msg *mimeparse.Message, ed *Edits) ([]mimeparse.Field, error) {
	named := map[string]bool{}
	for _, h := range ed.Headers {
		if h.Op == "set" || h.Op == "remove" {
			named[strings.ToLower(cleanName(h.Name))] = true
		}
	}
	if ed.SubjectPrefix != "" {
		named["subject"] = true
	}
	strip := len(ed.Strip) > 0
	if strip {
		named["mime-version"] = true
	}
	keep := len(msg.Fields)
	var (
		out  []mimeparse.Field
		last mimeparse.Field
		i    int
	)
	err := mimeparse.ScanHeader(bytes.NewReader(block), func(f mimeparse.Field) {
		name := strings.ToLower(f.Name)
		if i < keep || named[name] || strip && strings.HasPrefix(name, "content-") {
			out = append(out, f)
		}
		last = f
		i++
	})
	if err != nil {
		return nil, fmt.Errorf("rules: re-reading the header block: %w", err)
	}
	if i > 0 && (len(out) == 0 || out[len(out)-1].Start != last.Start) {
		out = append(out, last)
	}
	return out, nil
}

// Plan turns a verdict's edits into byte splices over the original message,
// sorted and non-overlapping. It sees the top-level fields in msg.Fields
// only: for a message with HeaderTruncated, Rewrite plans over every field.
//
//   - header add: a new field inserted at the top of the header block;
//   - header set: every instance removed, then added;
//   - header remove: each matching top-level field's [Start, End) deleted,
//     and any field an earlier rule added under that name dropped;
//   - subject_prefix: the first Subject field rewritten in place with the
//     prefix before its raw value (encoded words kept), unless the subject
//     already starts with the prefix; without a Subject, one is added;
//   - strip: the part's Content-* fields replaced by a text/plain notice
//     header and its body by a short text naming the file and the rule,
//     in the line-ending style of the part's header. Other fields of the
//     part and the boundaries around it are kept, so the MIME structure and
//     every other part stay byte-identical.
//
// Strips naming a part that does not exist are ignored; a part inside one
// already stripped is covered by the enclosing notice.
func Plan(msg *mimeparse.Message, ed *Edits) []mimeparse.Edit {
	if msg == nil {
		return nil
	}
	return planFields(msg, msg.Fields, ed)
}

// planFields is Plan over fields, the top-level header's fields in order.
func planFields(msg *mimeparse.Message, fields []mimeparse.Field, ed *Edits) []mimeparse.Edit {
	if msg == nil || ed == nil || ed.Empty() {
		return nil
	}
	p := planner{msg: msg, fields: fields, eol: cmp.Or(mimeparse.HeaderLineBreak(fields), "\r\n"), deleted: map[int64]bool{}}
	p.headers(ed)
	p.strips(ed.Strip)
	return p.sorted()
}

type planner struct {
	msg     *mimeparse.Message
	fields  []mimeparse.Field // the top-level header's (msg.Fields, or all of them)
	eol     string
	edits   []mimeparse.Edit
	deleted map[int64]bool // Start of every field already deleted
}

// added is one field to insert at the top of the header block.
type added struct{ name, value string }

func (p *planner) headers(ed *Edits) {
	var adds []added
	dropAdds := func(name string) {
		out := adds[:0]
		for _, a := range adds {
			if !strings.EqualFold(a.name, name) {
				out = append(out, a)
			}
		}
		adds = out
	}
	removed := map[string]bool{} // lower-case names whose fields are all gone
	for _, h := range ed.Headers {
		name := cleanName(h.Name)
		if name == "" {
			continue
		}
		switch h.Op {
		case "add":
			adds = append(adds, added{name, h.Value})
		case "set":
			p.removeFields(name)
			removed[strings.ToLower(name)] = true
			dropAdds(name)
			adds = append(adds, added{name, h.Value})
		case "remove":
			p.removeFields(name)
			removed[strings.ToLower(name)] = true
			dropAdds(name)
		case OpRemoveToken:
			for _, f := range p.fields {
				if strings.EqualFold(f.Name, name) && strings.EqualFold(FirstToken(f.Raw), h.Value) {
					p.deleteField(f)
				}
			}
		}
	}
	if ed.SubjectPrefix != "" {
		adds = p.subjectPrefix(ed.SubjectPrefix, adds, removed["subject"])
	}
	at := int64(0)
	if len(p.fields) > 0 {
		at = p.fields[0].Start
	}
	var b strings.Builder
	for _, a := range adds {
		b.WriteString(formatField(a.name, a.value, p.eol))
	}
	if b.Len() > 0 {
		p.edits = append(p.edits, mimeparse.Edit{Start: at, End: at, Data: []byte(b.String())})
	}
}

// subjectPrefix applies the prefix to the subject that will be sent: a
// Subject added by a rule, else the first Subject field in place, else a new
// field.
func (p *planner) subjectPrefix(prefix string, adds []added, subjectRemoved bool) []added {
	for i := len(adds) - 1; i >= 0; i-- {
		if strings.EqualFold(adds[i].name, "Subject") {
			if !strings.HasPrefix(adds[i].value, prefix) {
				adds[i].value = prefix + adds[i].value
			}
			return adds
		}
	}
	if !subjectRemoved {
		for _, f := range p.fields {
			if !strings.EqualFold(f.Name, "Subject") {
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(f.Value), strings.TrimSpace(prefix)) {
				return adds // already tagged (a reply to tagged mail, a second pass)
			}
			raw := strings.TrimLeft(f.Raw, " \t")
			trimmed := strings.TrimRight(prefix, " ")
			pre := encodeValue(trimmed) + prefix[len(trimmed):]
			if (strings.HasPrefix(raw, "=?") || pre != prefix) && !strings.HasSuffix(pre, " ") {
				pre += " " // RFC 2047 §5: an encoded word must stand apart from text
			}
			eol := cmp.Or(mimeparse.FieldLineBreak(f), p.eol)
			p.edits = append(p.edits, mimeparse.Edit{Start: f.Start, End: f.End,
				Data: []byte(f.Name + ": " + pre + raw + eol)})
			p.deleted[f.Start] = true
			return adds
		}
	}
	return append(adds, added{"Subject", strings.TrimRight(prefix, " ")})
}

// removeFields deletes every top-level field called name.
func (p *planner) removeFields(name string) {
	for _, f := range p.fields {
		if strings.EqualFold(f.Name, name) {
			p.deleteField(f)
		}
	}
}

func (p *planner) deleteField(f mimeparse.Field) {
	if p.deleted[f.Start] || f.End <= f.Start {
		return
	}
	p.deleted[f.Start] = true
	p.edits = append(p.edits, mimeparse.Edit{Start: f.Start, End: f.End})
}

// sorted orders the edits by Start, insertions before replacements at the
// same offset, keeping the planning order otherwise, and drops any edit
// that would overlap one before it (it cannot happen with offsets from one
// parse; the guard keeps Splice's contract whatever the input).
func (p *planner) sorted() []mimeparse.Edit {
	sort.SliceStable(p.edits, func(i, j int) bool {
		a, b := p.edits[i], p.edits[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		return a.End == a.Start && b.End != b.Start
	})
	out := p.edits[:0]
	var end int64
	for i, e := range p.edits {
		if i > 0 && e.Start < end {
			continue
		}
		out = append(out, e)
		end = e.End
	}
	return out
}

// cleanName keeps the printable ASCII of a field name except the colon
// (RFC 5322 §3.6.8: ftext is %d33-57 / %d59-126).
func cleanName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 33 && c <= 126 && c != ':' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// formatField renders "Name: value" with the value made safe for a header:
// line breaks and other controls become spaces (a template must not be
// able to inject fields), non-ASCII is RFC 2047-encoded, and long values
// are folded at spaces (RFC 5322 §2.2.3).
func formatField(name, value, eol string) string {
	v := encodeValue(value)
	line := name + ": "
	var b strings.Builder
	width := len(line)
	b.WriteString(line)
	for i, w := range strings.Split(v, " ") {
		if i > 0 {
			if width+1+len(w) > 78 && width > len(line) {
				b.WriteString(eol + " ")
				width = 1
			} else {
				b.WriteByte(' ')
				width++
			}
		}
		b.WriteString(w)
		width += len(w)
	}
	b.WriteString(eol)
	return b.String()
}

// encodeValue replaces control characters by spaces and encodes non-ASCII
// text as RFC 2047 encoded words.
func encodeValue(v string) string {
	v = strings.Map(func(r rune) rune {
		if r < 32 || r == 127 {
			return ' '
		}
		return r
	}, v)
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", v)
		}
	}
	return v
}

// OpRemoveToken is the header edit that removes only the fields called
// Name whose value begins with the token Value (case-insensitive, a final
// dot ignored): how mailgate drops incoming Authentication-Results fields
// that claim its authserv-id (RFC 8601 §5) and keeps the others.
const OpRemoveToken = "remove-token"

// FirstToken is the first word of a structured field value: comments and
// whitespace before it skipped (so "(x) mx.example.org; ..." still names
// mx.example.org), up to whitespace, ';' or '(' , without a final dot.
func FirstToken(v string) string {
	depth := 0
	i := 0
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0, c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			j := i
			for j < len(v) && !strings.ContainsRune(" \t\r\n;(", rune(v[j])) {
				j++
			}
			return strings.TrimSuffix(v[i:j], ".")
		}
	}
	return ""
}
