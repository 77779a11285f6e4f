package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mailgate/upstream"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// readDot runs the dot reader over in and returns the message, the error at
// its end and what is left in the buffer after it.
func readDot(t testing.TB, in string, normalize bool, shape func(io.Reader) io.Reader) (string, error, string) {
	br := bufio.NewReaderSize(shape(strings.NewReader(in)), 16)
	dr := newDotReader(br, normalize)
	got, err := io.ReadAll(dr)
	rest, _ := io.ReadAll(br)
	return string(got), err, string(rest)
}

func TestDotReader(t *testing.T) {
	tests := []struct {
		name, in  string
		normalize bool
		want      string
		err       error
		rest      string
	}{
		{name: "empty", in: ".\r\nQUIT\r\n", want: "", rest: "QUIT\r\n"},
		{name: "simple", in: "a\r\nb\r\n.\r\nQUIT\r\n", want: "a\r\nb\r\n", rest: "QUIT\r\n"},
		{name: "unstuff", in: "..a\r\n...\r\n.\r\n", want: ".a\r\n..\r\n"},
		{name: "dot inside", in: "a.b\r\n .\r\n.\r\n", want: "a.b\r\n .\r\n"},
		{name: "bare LF", in: "a\nb\r\n.\r\n", want: "a\nb\r\n", err: errBareLF},
		{name: "bare CR", in: "a\rb\r\n.\r\n", want: "a\rb\r\n", err: errBareCR},
		{name: "NUL", in: "a\x00b\r\n.\r\n", want: "a\x00b\r\n", err: errNUL},
		{name: "LF.LF not an end", in: "a\n.\nMAIL FROM:<x>\r\n.\r\n", want: "a\n.\nMAIL FROM:<x>\r\n", err: errBareLF},
		{name: "LF.CRLF not an end", in: "a\n.\r\nRCPT\r\n.\r\n", want: "a\n.\r\nRCPT\r\n", err: errBareLF},
		{name: "CRLF.LF not an end", in: "a\r\n.\nb\r\n.\r\n", want: "a\r\n.\nb\r\n", err: errBareLF},
		{name: "CR.CR not an end", in: "a\r.\rb\r\n.\r\n", want: "a\r.\rb\r\n", err: errBareCR},
		{name: "CRLF NUL . CRLF", in: "a\r\n\x00.\r\nb\r\n.\r\n", want: "a\r\n\x00.\r\nb\r\n", err: errNUL},
		{name: "normalize LF", in: "a\nb\n\r\n.\r\n", normalize: true, want: "a\r\nb\r\n\r\n"},
		{name: "normalize CR", in: "a\rb\r\n.\r\n", normalize: true, want: "a\r\nb\r\n"},
		{name: "normalize LF.LF kept", in: "a\n.\nb\r\n.\r\n", normalize: true, want: "a\r\n.\r\nb\r\n"},
		{name: "normalize LF.CRLF kept", in: "a\n.\r\nb\r\n.\r\n", normalize: true, want: "a\r\n.\r\nb\r\n"},
		{name: "normalize NUL rejected", in: "a\x00\r\n.\r\n", normalize: true, want: "a\x00\r\n", err: errNUL},
		{name: "CRCRLF", in: "a\r\r\n.\r\n", want: "a\r\r\n", err: errBareCR},
		{name: "unterminated", in: "a\r\nb\r\n", want: "a\r\nb\r\n", err: io.ErrUnexpectedEOF},
		{name: "dot CR X", in: ".\rX\r\n.\r\n", want: ".\rX\r\n", err: errBareCR},
	}
	shapes := map[string]func(io.Reader) io.Reader{
		"plain": func(r io.Reader) io.Reader { return r },
		"one":   iotest.OneByteReader,
		"half":  iotest.HalfReader,
	}
	for _, tc := range tests {
		for sn, shape := range shapes {
			t.Run(tc.name+"/"+sn, func(t *testing.T) {
				got, err, rest := readDot(t, tc.in, tc.normalize, shape)
				if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
				if tc.err != io.ErrUnexpectedEOF && rest != tc.rest {
					t.Errorf("left %q, want %q", rest, tc.rest)
				}
			})
		}
	}
}

func TestDotWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ".\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{".a\r\n.\r\n", "..a\r\n..\r\n.\r\n"},
		{"a\nb\rc\r\n", "a\r\nb\r\nc\r\n.\r\n"},
		{"a\n.\n", "a\r\n..\r\n.\r\n"},
		{"x\r", "x\r\n.\r\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		w := upstream.NewDotWriter(&b)
		io.Copy(w, iotest.OneByteReader(strings.NewReader(tc.in)))
		w.Close()
		if b.String() != tc.want {
			t.Errorf("dotWriter(%q) = %q, want %q", tc.in, b.String(), tc.want)
		}
	}
}

// FuzzDotReader checks the DATA reader's properties: it never panics; it
// ends only at CRLF "." CRLF (so the bytes left are exactly those after the
// first such sequence that follows a real line start); and on clean input
// re-encoding gives back the input (dotWriter(dotReader(x)) == x).
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n.\r\n", "..x\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r.\r\r\n.\r\n",
		"a\r\n\x00.\r\n.\r\n", "a\n.\r\nb\r\n.\r\nQUIT\r\n", "\r\n.\r\n"} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, normalize bool) {
		got, err, rest := readDot(t, string(in), normalize, func(r io.Reader) io.Reader { return r })
		end := wireEnd(in)
		if end < 0 {
			if err == nil || errors.Is(err, errBareLF) || errors.Is(err, errBareCR) || errors.Is(err, errNUL) {
				t.Fatalf("no CRLF.CRLF in %q but reader ended with %v", in, err)
			}
			return
		}
		if rest != string(in[end:]) {
			t.Fatalf("reader stopped at the wrong place in %q: left %q, want %q", in, rest, in[end:])
		}
		clean := !bytes.ContainsAny(in[:end], "\x00") && cleanCRLF(in[:end])
		if clean && !validStuffing(in[:end]) {
			// A lone leading dot is removed: accepted, not round-trippable.
			if err != nil {
				t.Fatalf("clean input %q: %v", in, err)
			}
		} else if clean {
			if err != nil {
				t.Fatalf("clean input %q: %v", in, err)
			}
			var b bytes.Buffer
			w := upstream.NewDotWriter(&b)
			w.Write([]byte(got))
			w.Close()
			if b.String() != string(in[:end]) {
				t.Fatalf("round trip: %q → %q → %q", in[:end], got, b.String())
			}
		} else if err == nil && !normalize {
			t.Fatalf("unclean input %q accepted", in[:end])
		}
		if normalize && err == nil && !cleanCRLF([]byte(got)) {
			t.Fatalf("normalized output %q has bare line breaks", got)
		}
	})
}

// wireEnd is the reference end-of-data finder: the index just past the
// first ".\r\n" at the start of the data or right after a CRLF, -1 if none.
func wireEnd(in []byte) int {
	if bytes.HasPrefix(in, []byte(".\r\n")) {
		return 3
	}
	i := bytes.Index(in, []byte("\r\n.\r\n"))
	if i < 0 {
		return -1
	}
	return i + 5
}

// validStuffing reports whether every line of a wire DATA payload that
// starts with a dot is stuffed (starts with two), the end line excepted.
func validStuffing(wire []byte) bool {
	lines := bytes.SplitAfter(wire, []byte("\r\n"))
	for i, l := range lines {
		if bytes.Equal(l, []byte(".\r\n")) && i == len(lines)-2 {
			break
		}
		if len(l) > 0 && l[0] == '.' && (len(l) < 2 || l[1] != '.') {
			return false
		}
	}
	return true
}

// cleanCRLF reports whether every CR and LF in b is part of a CRLF.
func cleanCRLF(b []byte) bool {
	for i, c := range b {
		switch c {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return false
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return false
			}
		}
	}
	return true
}

// TestDotReaderDirect: reads with a large p (scanned straight into it) and
// with small ones (through the reader's own buffer) give the same message,
// the same violation and leave the same bytes, on random mixes of CR, LF,
// dots and NUL.
func TestDotReaderDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	alphabet := []byte("\r\n.x\x00")
	read := func(in []byte, normalize bool, size int) (string, error, string) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 4096)
		dr := newDotReader(br, normalize)
		var got []byte
		p := make([]byte, size)
		var err error
		for i := 0; i < 1_000_000; i++ {
			var n int
			n, err = dr.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		rest, _ := io.ReadAll(br)
		return string(got), err, string(rest)
	}
	for round := 0; round < 500; round++ {
		in := make([]byte, rng.IntN(20000))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		in = append(in, "\r\n.\r\nQUIT\r\n"...)
		normalize := round%2 == 0
		g1, e1, r1 := read(in, normalize, 32<<10)
		g2, e2, r2 := read(in, normalize, 100)
		if g1 != g2 || e1 != e2 || r1 != r2 {
			t.Fatalf("round %d: large reads (%d bytes, %v, rest %d) differ from small (%d, %v, rest %d)",
				round, len(g1), e1, len(r1), len(g2), e2, len(r2))
		}
	}
}
