package mimeparse

import (
	"bytes"
	"os"
	"testing"
)

func bounds(bs ...string) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		if b != "" {
			out[i] = []byte(b)
		}
	}
	return out
}

func TestDelimSearchScan(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		bounds    [][]byte
		start     bool
		eof, full bool
		want      delimStep
	}{
		{"crlf delimiter", "hello\r\n--b\r\nnext", bounds("b"), true, true, false,
			delimStep{n: 5, brk: 2, line: 5, node: 0}},
		{"lf close with padding", "x\n--b--  \nepi", bounds("b"), true, true, false,
			delimStep{n: 1, brk: 1, line: 8, node: 0, isClose: true}},
		{"first line", "--b\r\nx", bounds("b"), true, false, false,
			delimStep{n: 0, line: 5, node: 0, first: true}},
		{"first line not at the body start", "--b\r\nx", bounds("b"), false, false, false,
			delimStep{n: 6 - 3, fill: true}},
		{"no candidate: hold 3 back", "abcdefgh", bounds("b"), true, false, false,
			delimStep{n: 5, fill: true}},
		{"short window", "ab", bounds("b"), true, false, false,
			delimStep{n: 0, fill: true}},
		{"end of input drops the final break", "abc\r\n", bounds("b"), false, true, false,
			delimStep{n: 3, brk: 2, node: -1}},
		{"end of input outside a multipart keeps it", "abc\r\n", bounds(""), false, true, false,
			delimStep{n: 5, node: -1}},
		{"candidate line incomplete", "ab\r\n--b", bounds("b"), false, false, false,
			delimStep{n: 2, fill: true}},
		{"candidate line too long for the buffer", "--bbbbbbbb", bounds("b"), true, false, true,
			delimStep{n: 2 + 8 - 3, fill: true}},
		{"another boundary is body", "a\n--c\nb\n--b\n", bounds("b"), false, true, false,
			delimStep{n: 7, brk: 1, line: 4, node: 0}},
		{"inner boundary first", "x\n--ab\n", bounds("a", "ab"), false, true, false,
			delimStep{n: 1, brk: 1, line: 5, node: 1}},
		{"outer boundary ends the inner part", "x\n--a\n", bounds("a", "ab"), false, true, false,
			delimStep{n: 1, brk: 1, line: 4, node: 0}},
		{"message container between", "\n--a--\n", bounds("a", "", "c"), false, true, false,
			delimStep{n: 0, brk: 1, line: 6, node: 0, isClose: true}},
		{"a lone CR starts no line", "a\r--b\r\n", bounds("b"), false, true, false,
			delimStep{n: 5, brk: 2, node: -1}},
		{"delimiter without a break at the end", "x\r\n--b--", bounds("b"), false, true, false,
			delimStep{n: 1, brk: 2, line: 5, node: 0, isClose: true}},
		{"bare dashes", "x\n--\n--\n", bounds("b"), false, true, false,
			delimStep{n: 7, brk: 1, node: -1}},
	} {
		s := delimSearch{bounds: tc.bounds, start: tc.start}
		if got := s.scan([]byte(tc.in), tc.eof, tc.full); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// refScan is the delimiter search written the slow, obvious way: every
// line start (the first byte, and after each "\n") is a candidate.
func refScan(in []byte, bs [][]byte) delimStep {
	for ls := 0; ls <= len(in); {
		le := len(in)
		if i := bytes.IndexByte(in[ls:], '\n'); i >= 0 {
			le = ls + i + 1
		}
		if ls == le {
			break
		}
		if node, isClose, ok := matchBounds(in[ls:le], bs, false); ok {
			brk := 0
			if ls > 0 {
				brk = 1
				if ls > 1 && in[ls-2] == '\r' {
					brk = 2
				}
			}
			return delimStep{n: ls - brk, brk: brk, line: le - ls, node: node, isClose: isClose, first: ls == 0}
		}
		ls = le
	}
	end := len(in)
	if anyBound(bs) {
		end -= lineBreakLen(in)
	}
	return delimStep{n: end, brk: len(in) - end, node: -1}
}

// streamScan drives scan the way scanBody does, over a buffer of the given
// capacity filled by reads of the given sizes (cycled); the end of input is
// seen only by a read that returns nothing. It returns the body handed out,
// the final step and the offset of its window.
func streamScan(t *testing.T, in []byte, bs [][]byte, capacity int, reads []byte) ([]byte, delimStep, int) {
	var body []byte
	r, w, k := 0, 0, 0
	eof, full := false, false
	s := delimSearch{bounds: bs, start: true}
	for iter := 0; ; iter++ {
		if iter > 4*len(in)+100 {
			t.Fatalf("no progress at %d of %d", r, len(in))
		}
		st := s.scan(in[r:w], eof, full)
		if st.n < 0 || st.n > w-r || !st.fill && st.n+st.brk+st.line > w-r {
			t.Fatalf("step %+v out of the window [%d,%d)", st, r, w)
		}
		body = append(body, in[r:r+st.n]...)
		if !st.fill {
			return body, st, r
		}
		r += st.n
		added := false
		switch {
		case eof:
		case w == len(in):
			eof = true
		case w-r < capacity:
			n := 1
			if len(reads) > 0 {
				n = int(reads[k%len(reads)]) + 1
				k++
			}
			n = min(n, capacity-(w-r), len(in)-w)
			w += n
			added = true
		}
		full = !added && !eof
	}
}

func FuzzBoundary(f *testing.F) {
	f.Add([]byte("hello\r\n--b\r\nnext"), "b", "", uint16(8), []byte{0, 3})
	f.Add([]byte("--b\r\nfirst"), "b", "", uint16(4), []byte{1})
	f.Add([]byte("x\n--c\r\n--b--  \t\r\nepilogue"), "b", "c", uint16(16), []byte{2, 0, 5})
	f.Add([]byte("a\r--b\r\n--bb\n--b\r"), "b", "bb", uint16(6), []byte{0})
	f.Add([]byte("--"+string(bytes.Repeat([]byte("b"), 40))+"\r\n--b--\r\n"), "b", "", uint16(12), []byte{9})
	f.Add([]byte("no delimiter at all\r\n"), "b", "", uint16(64), []byte{})
	if files, err := os.ReadDir("../testdata/mime"); err == nil {
		for _, e := range files {
			if raw, err := os.ReadFile("../testdata/mime/" + e.Name()); err == nil && bytes.HasSuffix([]byte(e.Name()), []byte(".eml")) {
				f.Add(raw, "b", "", uint16(64), []byte{31, 7})
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, outer, inner string, capacity uint16, reads []byte) {
		if outer == "" || len(in) > 1<<16 {
			return
		}
		bs := bounds(outer, "", inner) // a message container between them
		whole := delimSearch{bounds: bs, start: true}
		want := whole.scan(in, true, false)
		if ref := refScan(in, bs); want != ref {
			t.Fatalf("scan %+v, reference %+v", want, ref)
		}
		maxLine := 0
		for _, l := range bytes.SplitAfter(in, []byte("\n")) {
			maxLine = max(maxLine, len(l))
		}
		c := max(int(capacity), 4)
		body, got, at := streamScan(t, in, bs, c, reads)
		if !bytes.Equal(body, in[:len(body)]) {
			t.Fatalf("body is not the input's prefix")
		}
		got.n += at // as offsets in the whole input
		if c >= maxLine+2 {
			if got != want {
				t.Fatalf("buffer %d: %+v, whole input %+v", c, got, want)
			}
			return
		}
		// A line longer than the buffer is never a delimiter: the search
		// may end later than over the whole input, never earlier.
		if got.n < want.n {
			t.Fatalf("buffer %d: ended at %d, before %d", c, got.n, want.n)
		}
		if got.node >= 0 {
			if _, _, ok := matchBounds(in[got.n+got.brk:got.n+got.brk+got.line], bs, false); !ok {
				t.Fatalf("buffer %d: %+v is no delimiter", c, got)
			}
		}
	})
}
