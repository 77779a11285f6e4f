package inspect

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSkipToB(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"begin 644 x\n", "begin 644 x\n"},
		{"a\nb\n", "b\n"},
		{"a\r\nc\r\nbe", "be"},
		{"abc\ndef\nghi", "ghi"},
		{"abc\ndef\n", ""},
		{"xb\nyb", "yb"},
	} {
		if got := string(skipToB([]byte(c.in))); got != c.want {
			t.Errorf("skipToB(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestUUEncodeSplits: the fast skip over lines outside a block gives the
// same Result wherever the body is cut into two writes, including inside
// "begin" and inside a line break, and with a last line without a break.
func TestUUEncodeSplits(t *testing.T) {
	pe := minimalPE()
	bodies := map[string][]byte{
		"crlf": append(append([]byte("bob\r\nhello\r\nb\r\nbeginning\r\n"), uuencode("a.exe", pe)...), "bye\r\nbegin 644 z.bin\r\n"...),
		"lf":   bytes.ReplaceAll(append([]byte("x\nbegin 6 no\n"), uuencode("c.txt", []byte("text here"))...), []byte("\r\n"), []byte("\n")),
		"last": []byte("line\r\nbegin 644 last.bin"),
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			opts := Options{Text: true}
			want := inspectBytes(t, opts, body)
			if len(want.Embedded) == 0 {
				t.Fatalf("no block found in %q", body)
			}
			for cut := 0; cut <= len(body); cut++ {
				ins := New(opts)
				ins.Write(body[:cut])
				ins.Write(body[cut:])
				if got := ins.Close(); !reflect.DeepEqual(got, want) {
					t.Fatalf("cut at %d:\n got %+v\nwant %+v", cut, got, want)
				}
			}
		})
	}
}
