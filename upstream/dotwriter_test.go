package upstream

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"mailgate/spool"
)

// countingWriter counts the writes it gets.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

// TestDotWriterBuffered: the dot writer's output is the pure encoder's,
// whatever the write sizes and wherever a leading dot, a bare LF or a CR
// falls against its 64 KiB buffer; and it writes in large pieces (a 1 MiB
// message in a few dozen writes, not one per line).
func TestDotWriterBuffered(t *testing.T) {
	var in []byte
	for i := 0; len(in) < 1<<20; i++ {
		switch i % 5 {
		case 0:
			in = append(in, ".dot line\r\n"...)
		case 1:
			in = append(in, "bare lf\n"...)
		case 2:
			in = append(in, "cr\r"...)
		default:
			in = append(in, strings.Repeat("x", i%97)+"\r\n"...)
		}
	}
	e := newDotEncoder()
	want := e.finish(e.encode(nil, in))
	for _, step := range []int{1 << 20 * 2, 65536, 4096, 333} {
		var out countingWriter
		w := NewDotWriter(&out)
		var err error
		if step > len(in) {
			_, err = io.Copy(w, bytes.NewReader(in)) // ReadFrom
		} else {
			for p := in; len(p) > 0 && err == nil; {
				n := min(step, len(p))
				_, err = w.Write(p[:n])
				p = p[n:]
			}
		}
		if err == nil {
			err = w.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("step %d: output differs from the encoder's (%d vs %d bytes)", step, out.Len(), len(want))
		}
		if max := len(want)/(spool.ChunkSize/2) + 2; out.writes > max {
			t.Fatalf("step %d: %d writes for %d bytes, want at most %d", step, out.writes, len(want), max)
		}
	}
}

// refEncode is the dot encoder as a plain byte loop, the reference for the
// fast path of dotEncoder.encode.
func refEncode(src []byte) []byte {
	var dst []byte
	bol, cr := true, false
	for _, c := range src {
		if cr {
			cr = false
			dst, bol = append(dst, '\r', '\n'), true
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			cr = true
			continue
		case '\n':
			dst, bol = append(dst, '\r', '\n'), true
			continue
		}
		if bol && c == '.' {
			dst = append(dst, '.')
		}
		bol = false
		dst = append(dst, c)
	}
	if cr {
		dst, bol = append(dst, '\r', '\n'), true
	}
	if !bol {
		dst = append(dst, '\r', '\n')
	}
	return append(dst, '.', '\r', '\n')
}

// TestDotEncoderReference: the encoder with its fast path gives the byte
// loop's output on random mixes of CR, LF, dots and text, fed in random
// pieces.
func TestDotEncoderReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	alphabet := []byte("\r\n.xy")
	for round := 0; round < 2000; round++ {
		in := make([]byte, rng.IntN(200))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		e := newDotEncoder()
		var got []byte
		for p := in; len(p) > 0; {
			n := 1 + rng.IntN(len(p))
			got = e.encode(got, p[:n])
			p = p[n:]
		}
		got = e.finish(got)
		if want := refEncode(in); !bytes.Equal(got, want) {
			t.Fatalf("encode(%q) = %q, want %q", in, got, want)
		}
	}
}
