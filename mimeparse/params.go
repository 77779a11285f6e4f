package mimeparse

import (
	"slices"
	"sort"
	"strconv"
	"strings"
)

// param is one resolved parameter of Content-Type or Content-Disposition.
type param struct {
	name  string // lower case, without RFC 2231 decoration
	value string // decoded: RFC 2231 form when present, else the first plain one
	all   []string
}

// mediaHeader is a parsed Content-Type or Content-Disposition value.
type mediaHeader struct {
	value   string // "type/subtype" or disposition, lower case, trimmed
	params  []param
	defects []string
}

func (m *mediaHeader) get(name string) (string, bool) {
	for i := range m.params {
		if m.params[i].name == name {
			return m.params[i].value, true
		}
	}
	return "", false
}

func (m *mediaHeader) getAll(name string) []string {
	for i := range m.params {
		if m.params[i].name == name {
			return m.params[i].all
		}
	}
	return nil
}

type rawParam struct {
	base    string
	section int  // -1: no section
	star    bool // RFC 2231 extended value (charset'lang'%XX)
	value   string
}

// parseMediaHeader parses "value; a=b; c*=utf-8”%41" leniently: quoted
// strings with backslash escapes, unquoted values up to the next ";"
// (spaces and tspecials included, as clients read them), RFC 2231
// continuations and charsets (RFC 2231 §3, §4), and RFC 2047 encoded words
// inside values (RFC 2047 §5 forbids them; every client decodes them).
func parseMediaHeader(s string) mediaHeader {
	return parseMediaHeaderWith(s, true)
}

// parseMediaHeaderWith is parseMediaHeader; fast false skips resolvePlain,
// so that tests can check it gives the same as the general resolve.
func parseMediaHeaderWith(s string, fast bool) mediaHeader {
	m := parseParams(s, fast)
	if i := strings.IndexByte(s, ';'); i >= 0 && strings.IndexByte(s[i:], '(') >= 0 {
		if aware, naive, ok := paramComments(s[i:]); ok {
			// Two more readings of the parameters: a comment-aware one
			// (RFC 5322 comments dropped) and a naive one (the parentheses
			// taken for separators). Every value they give is kept in all.
			for _, alt := range []string{aware, naive} {
				o := parseParams(m.value+alt, fast)
				for _, op := range o.params {
					if (op.name == "filename" || op.name == "name") && m.mergeParam(op) {
						m.addDefect(DefectCommentInParameters)
					}
				}
			}
		}
	}
	return m
}

// mergeParam adds the values of op (from another reading) to the
// parameter of the same name, or adds it, and reports whether that added
// a value.
func (m *mediaHeader) mergeParam(op param) bool {
	for i := range m.params {
		if m.params[i].name == op.name {
			n := len(m.params[i].all)
			for _, v := range op.all {
				m.params[i].all = appendUnique(slices.Clip(m.params[i].all), v)
			}
			return len(m.params[i].all) > n
		}
	}
	m.params = append(m.params, param{name: op.name, value: op.value, all: append([]string(nil), op.all...)})
	return true
}

// paramComments returns the parameter section s (from its first ";") read
// two ways: comment-aware (RFC 5322 comments outside quoted strings
// dropped) and naive (quoted strings recognised everywhere, parentheses
// taken for ";"), and whether s had a comment at all.
func paramComments(s string) (aware, naive string, ok bool) {
	var a strings.Builder
	depth := 0
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if depth > 0 {
			switch c {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			}
			continue
		}
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			a.WriteByte(c)
			i++
			c = s[i]
		case quoted && c == '"':
			quoted = false
		case !quoted && c == '"':
			quoted = true
		case !quoted && c == '(' && commentStart(s[:i]):
			depth, ok = 1, true
			continue
		}
		a.WriteByte(c)
	}
	n := []byte(s)
	quoted = false
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '(' && commentStart(s[:i]), !quoted && c == ')' && ok:
			n[i] = ';'
		}
	}
	return a.String(), string(n), ok
}

// commentStart reports whether a "(" after before starts a comment: it
// follows white space, ";" or "=" (in "file(1).pdf" it is part of a value).
func commentStart(before string) bool {
	if before == "" {
		return true
	}
	switch before[len(before)-1] {
	case ' ', '\t', ';', '=', '\n', '\r', '"':
		return true
	}
	return false
}

func parseParams(s string, fast bool) mediaHeader {
	var m mediaHeader
	i := strings.IndexByte(s, ';')
	if i < 0 {
		m.value = strings.ToLower(strings.TrimSpace(stripComment(s)))
		return m
	}
	m.value = strings.ToLower(strings.TrimSpace(stripComment(s[:i])))
	s = s[i:]
	var raws []rawParam
	for len(s) > 0 {
		s = strings.TrimLeft(s, "; \t\r\n")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "=;")
		if eq < 0 || s[eq] == ';' {
			if eq < 0 {
				break
			}
			s = s[eq:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t\r\n")
		var val string
		if strings.HasPrefix(s, "\"") {
			val, s = quotedString(s)
			// junk after the closing quote up to ";" is dropped
			if j := strings.IndexByte(s, ';'); j >= 0 {
				s = s[j:]
			} else {
				s = ""
			}
		} else {
			j := strings.IndexByte(s, ';')
			if j < 0 {
				j = len(s)
			}
			val = strings.TrimRight(s[:j], " \t\r\n")
			s = s[j:]
		}
		if name == "" {
			continue
		}
		rp := rawParam{base: name, section: -1, value: val}
		if strings.HasSuffix(rp.base, "*") {
			rp.star = true
			rp.base = rp.base[:len(rp.base)-1]
		}
		if k := strings.LastIndexByte(rp.base, '*'); k >= 0 {
			if n, err := strconv.Atoi(rp.base[k+1:]); err == nil && n >= 0 {
				rp.section = n
				rp.base = rp.base[:k]
			}
		}
		raws = append(raws, rp)
	}
	if !fast || !m.resolvePlain(raws) {
		m.resolve(raws)
	}
	return m
}

func (m *mediaHeader) addDefect(d string) {
	for _, x := range m.defects {
		if x == d {
			return
		}
	}
	m.defects = append(m.defects, d)
}

// resolve merges continuations and picks each parameter's value.
func (m *mediaHeader) resolve(raws []rawParam) {
	var order []string
	byName := map[string][]rawParam{} // one pass: a header of many parameters stays linear
	for _, r := range raws {
		if _, ok := byName[r.base]; !ok {
			order = append(order, r.base)
		}
		byName[r.base] = append(byName[r.base], r)
	}
	for _, name := range order {
		var plain []string
		var ext []rawParam
		for _, r := range byName[name] {
			if r.section < 0 && !r.star {
				plain = append(plain, m.plainValue(r.value))
			} else {
				ext = append(ext, r)
			}
		}
		p := param{name: name}
		if len(plain) > 1 {
			if name == "boundary" {
				m.addDefect(DefectMultipleBoundaries)
			} else if !allSame(plain) {
				m.addDefect(DefectDuplicateParameter)
			}
		}
		if len(ext) > 0 {
			v := m.extValue(ext)
			p.value = v
			p.all = append(p.all, v)
			for _, pv := range plain {
				if pv != v {
					m.addDefect(DefectMixedRFC2231)
				}
				p.all = appendUnique(p.all, pv)
			}
		} else {
			p.value = plain[0]
			for _, pv := range plain {
				p.all = appendUnique(p.all, pv)
			}
		}
		m.params = append(m.params, p)
	}
}

// resolvePlain is resolve for the common header, where every parameter is
// plain (no RFC 2231 section or charset) and appears once: the same params
// in the same order, without the map and the per-name slices. It reports
// false, having done nothing, for any other header.
func (m *mediaHeader) resolvePlain(raws []rawParam) bool {
	if len(raws) > 8 {
		return false
	}
	for i, r := range raws {
		if r.section >= 0 || r.star {
			return false
		}
		for _, q := range raws[:i] {
			if q.base == r.base {
				return false
			}
		}
	}
	if len(raws) == 0 {
		return true
	}
	vals := make([]string, len(raws))
	params := make([]param, 0, len(m.params)+len(raws))
	m.params = append(params, m.params...)
	for i, r := range raws {
		vals[i] = m.plainValue(r.value)
		m.params = append(m.params, param{name: r.base, value: vals[i], all: vals[i : i+1 : i+1]})
	}
	return true
}

func (m *mediaHeader) plainValue(v string) string {
	if strings.Contains(v, "=?") {
		d, ds := decodeHeaderWords(v)
		if d != v {
			m.addDefect(DefectEncodedWordInParameter)
		}
		for _, x := range ds {
			m.addDefect(x)
		}
		v = d
	}
	// Raw 8-bit bytes stay as they are: a boundary must match the raw
	// delimiter lines, and names are decoded by the caller, who knows the
	// part's charset (nameText).
	return v
}

// extValue joins RFC 2231 sections in order and decodes them.
func (m *mediaHeader) extValue(ext []rawParam) string {
	sort.SliceStable(ext, func(i, j int) bool { return ext[i].section < ext[j].section })
	var charset string
	var buf []byte
	want := 0
	for i, r := range ext {
		sec := r.section
		if sec < 0 {
			sec = 0
		}
		if sec != want {
			m.addDefect(DefectBrokenRFC2231)
			if sec < want { // duplicate section
				continue
			}
		}
		want = sec + 1
		v := r.value
		if r.star {
			if i == 0 && sec == 0 {
				a := strings.IndexByte(v, '\'')
				b := -1
				if a >= 0 {
					b = strings.IndexByte(v[a+1:], '\'')
				}
				if a < 0 || b < 0 {
					m.addDefect(DefectBrokenRFC2231)
				} else {
					charset = v[:a]
					v = v[a+1+b+1:]
				}
			}
			buf = append(buf, pctDecode(v)...)
		} else {
			buf = append(buf, v...)
		}
	}
	if charset == "" {
		return m.plainValue(string(buf))
	}
	s, ok := toUTF8(charset, buf)
	if !ok {
		m.addDefect(DefectUnknownCharset)
	}
	return s
}

func pctDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

// quotedString reads a quoted string at the start of s (RFC 5322 §3.2.4),
// returning its content without escapes and the rest. An unterminated
// string runs to the end.
func quotedString(s string) (string, string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}

// stripComment drops RFC 5322 comments "(...)" from a type value.
func stripComment(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func allSame(v []string) bool {
	for _, x := range v[1:] {
		if x != v[0] {
			return false
		}
	}
	return true
}

func appendUnique(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}
