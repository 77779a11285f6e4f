package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Problem is one load error at a position in a file.
type Problem struct {
	File      string
	Line, Col int // 1-based
	Msg       string
	Snippet   string // optional source line and caret, without a final newline
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, p.Msg)
}

// LoadError lists every problem found while loading a policy set. Error()
// is one "file:line:col: message" line per problem, each followed by its
// snippet lines (indented), if any.
type LoadError struct {
	Problems []Problem
}

func (e *LoadError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.String())
		if p.Snippet != "" {
			b.WriteByte('\n')
			b.WriteString(p.Snippet)
		}
	}
	return b.String()
}

func (e *LoadError) add(file string, line, col int, msg string) {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	e.Problems = append(e.Problems, Problem{File: file, Line: line, Col: col, Msg: msg})
}

func (e *LoadError) addSnippet(file string, line, col int, msg string, src []byte) {
	e.add(file, line, col, msg)
	p := &e.Problems[len(e.Problems)-1]
	p.Snippet = snippet(src, p.Line, p.Col)
}

// snippet returns the source line and a caret under col, both indented.
func snippet(src []byte, line, col int) string {
	if src == nil {
		return ""
	}
	l := 1
	start := 0
	for i := 0; i < len(src) && l < line; i++ {
		if src[i] == '\n' {
			l++
			start = i + 1
		}
	}
	if l != line {
		return ""
	}
	end := start
	for end < len(src) && src[end] != '\n' && src[end] != '\r' {
		end++
	}
	text := strings.ReplaceAll(string(src[start:end]), "\t", " ")
	if len(text) > 200 {
		return ""
	}
	c := col - 1
	if c > len(text) {
		c = len(text)
	}
	return "    | " + text + "\n    | " + strings.Repeat(" ", c) + "^"
}

var yamlLineRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?: `)

// yamlProblem turns a yaml.v3 syntax error ("yaml: line 3: did not find
// expected key") into a positioned problem; yaml.v3 gives lines, sometimes
// columns.
func yamlProblem(file string, src []byte, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, col := 1, 1
	if l := yamlErrorLine(src, msg); l > 0 {
		// yaml.v3 often names the line where the enclosing block starts,
		// or no line at all: find the first line at which the error appears.
		if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
			msg = msg[:m[0]] + msg[m[1]:]
		}
		return Problem{File: file, Line: l, Col: firstNonSpace(src, l), Msg: msg + quoteHint(src, l, msg), Snippet: snippet(src, l, firstNonSpace(src, l))}
	}
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		line, _ = strconv.Atoi(msg[m[2]:m[3]])
		if m[4] >= 0 {
			col, _ = strconv.Atoi(msg[m[4]:m[5]])
			col++
		} else {
			col = firstNonSpace(src, line)
		}
		msg = msg[:m[0]] + msg[m[1]:]
	}
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	return Problem{File: file, Line: line, Col: col, Msg: msg + quoteHint(src, line, msg), Snippet: snippet(src, line, col)}
}

// valueSyntaxError reports whether a yaml.v3 error is one that YAML
// syntax inside an unquoted value causes (not an indentation mistake).
func valueSyntaxError(msg string) bool {
	for _, s := range []string{"mapping values are not allowed", "did not find expected key", "cannot start any token",
		"did not find expected ','", "did not find expected node content", "could not find expected ':'", "found unexpected end of stream"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// expressionKeyRE matches a line that gives an expression key an unquoted
// value.
var expressionKeyRE = regexp.MustCompile(`^\s*(?:-\s+)?(when|strip|subject_prefix):\s+([^'"|>\s].*)$`)

// quoteHint suggests quoting when the line of a YAML error gives when:
// (or strip:, subject_prefix:) an unquoted expression: YAML reads ": ",
// " #", a leading "[", "{", "!", "&", "*" or "%" in it as its own syntax.
func quoteHint(src []byte, line int, msg string) string {
	lines := strings.Split(string(src), "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	m := expressionKeyRE.FindStringSubmatch(strings.TrimRight(lines[line-1], "\r"))
	if m == nil || !valueSyntaxError(msg) {
		return ""
	}
	return fmt.Sprintf(" (quote the expression: %s: '%s', and write a ' inside it as '')", m[1], strings.ReplaceAll(strings.TrimSpace(m[2]), "'", "''"))
}

// yamlErrorLine returns the first line n such that the first n lines of src
// already fail with the same message as the whole; 0 when none does. Once
// the faulty line is in, every longer prefix fails the same way (yaml.v3
// stops at the first error), so a binary search over line counts finds it
// in O(log lines) parses.
func yamlErrorLine(src []byte, msg string) int {
	if len(src) > 1<<20 {
		return 0
	}
	want := yamlLineRE.ReplaceAllString(msg, "")
	ends := []int{} // ends[i] is the end of line i+1
	for i, c := range src {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(src) {
		ends = append(ends, len(src))
	}
	fails := func(n int) bool {
		var node yaml.Node
		err := yaml.Unmarshal(src[:ends[n-1]], &node)
		return err != nil && yamlLineRE.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "") == want
	}
	lo, hi := 1, len(ends) // find the least n in [lo, hi] with fails(n)
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// firstNonSpace returns the 1-based column of the first non-blank byte of
// line (1 when there is none).
func firstNonSpace(src []byte, line int) int {
	l := 1
	for i := 0; i < len(src); i++ {
		if l == line {
			for j := i; j < len(src) && src[j] != '\n'; j++ {
				if src[j] != ' ' && src[j] != '\t' {
					return j - i + 1
				}
			}
			return 1
		}
		if src[i] == '\n' {
			l++
		}
	}
	return 1
}
