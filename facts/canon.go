package facts

import (
	"bytes"
	"hash"
	"strings"
)

// DKIM canonicalization (RFC 6376 §3.4), written here for ARC: go-msgauth
// keeps its canonicalizers unexported.

// headerField is one field of the message header as it came, with its
// CRLF (continuation lines included).
type headerField struct {
	name string // as written
	raw  string // "Name: value\r\n"
}

// splitHeader splits a header block (without the empty line) into fields.
func splitHeader(b []byte) []headerField {
	var out []headerField
	for len(b) > 0 {
		end := 0
		for {
			i := bytes.Index(b[end:], []byte("\r\n"))
			if i < 0 {
				end = len(b)
				break
			}
			end += i + 2
			if end >= len(b) || (b[end] != ' ' && b[end] != '\t') {
				break
			}
		}
		raw := string(b[:end])
		b = b[end:]
		name, _, ok := strings.Cut(raw, ":")
		if !ok {
			continue
		}
		out = append(out, headerField{name: strings.TrimSpace(name), raw: raw})
	}
	return out
}

// value is the field's unfolded value as written (after the colon).
func (f headerField) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return v
}

func isWSP(c byte) bool { return c == ' ' || c == '\t' }

// relaxedHeader is the relaxed canonical form "name:value\r\n".
func relaxedHeader(raw string) string {
	name, v, _ := strings.Cut(raw, ":")
	v = strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", ""), "\n", "")
	var b strings.Builder
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	ws, started := false, false
	for i := 0; i < len(v); i++ {
		if isWSP(v[i]) {
			ws = true
			continue
		}
		if ws && started {
			b.WriteByte(' ')
		}
		ws, started = false, true
		b.WriteByte(v[i])
	}
	b.WriteString("\r\n")
	return b.String()
}

func canonHeader(raw string, relaxed bool) string {
	if relaxed {
		return relaxedHeader(raw)
	}
	return raw
}

// bodyCanon is a body canonicalizer writing into a hash as the body
// streams in: trailing empty lines are held back until a non-empty line
// shows they were not trailing.
type bodyCanon struct {
	h       hash.Hash
	relaxed bool
	line    []byte // the current line, without CRLF
	empties int    // empty lines held back
	any     bool   // a non-empty line was written
	maxLine int
}

func (c *bodyCanon) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.line = append(c.line, p...)
			break
		}
		c.line = append(c.line, p[:i]...)
		c.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (c *bodyCanon) endLine() {
	l := bytes.TrimSuffix(c.line, []byte("\r"))
	if c.relaxed {
		l = relaxLine(l)
	}
	if len(l) == 0 {
		c.empties++
	} else {
		for ; c.empties > 0; c.empties-- {
			c.h.Write([]byte("\r\n"))
		}
		c.h.Write(l)
		c.h.Write([]byte("\r\n"))
		c.any = true
	}
	c.line = c.line[:0]
}

// Sum ends the body and returns the hash.
func (c *bodyCanon) Sum() []byte {
	if len(c.line) > 0 {
		c.endLine()
	}
	if !c.any && !c.relaxed {
		c.h.Write([]byte("\r\n")) // simple: an empty body is one CRLF
	}
	return c.h.Sum(nil)
}

// relaxLine reduces whitespace runs to one space and drops it at the end.
func relaxLine(l []byte) []byte {
	out := make([]byte, 0, len(l))
	ws := false
	for _, b := range l {
		if isWSP(b) {
			ws = true
			continue
		}
		if ws {
			out = append(out, ' ')
		}
		ws = false
		out = append(out, b)
	}
	return out
}

// tagList parses "a=b; c=d" (RFC 6376 §3.2), values with whitespace
// removed for b, bh and p.
func tagList(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.Join(strings.Fields(strings.NewReplacer("\r\n", "").Replace(v)), " ")
		if k == "b" || k == "bh" || k == "p" || k == "h" {
			v = strings.Join(strings.Fields(v), "")
		}
		out[k] = v
	}
	return out
}

// withoutB returns the raw field with the value of its b= tag emptied
// (what the signature covers of itself).
func withoutB(raw string) string {
	name, v, _ := strings.Cut(raw, ":")
	parts := strings.Split(v, ";")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && strings.TrimSpace(k) == "b" {
			parts[i] = p[:strings.IndexByte(p, '=')+1]
		}
	}
	return name + ":" + strings.Join(parts, ";")
}

// trimCRLF drops the final CRLF: a signature field is hashed without it.
func trimCRLF(s string) string { return strings.TrimSuffix(s, "\r\n") }
