package mimeparse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSplice(t *testing.T) {
	const src = "Subject: hi\r\nX-A: 1\r\n\r\nbody\r\n"
	tests := []struct {
		name  string
		edits []Edit
		want  string
		err   error
	}{
		{"none", nil, src, nil},
		{"insert-top", []Edit{{0, 0, []byte("X-New: y\r\n")}}, "X-New: y\r\n" + src, nil},
		{"insert-end", []Edit{{int64(len(src)), int64(len(src)), []byte("tail")}}, src + "tail", nil},
		{"remove-field", []Edit{{13, 21, nil}}, "Subject: hi\r\n\r\nbody\r\n", nil},
		{"replace-subject", []Edit{{0, 13, []byte("Subject: [EXT] hi\r\n")}}, "Subject: [EXT] hi\r\nX-A: 1\r\n\r\nbody\r\n", nil},
		{"insert-then-replace-same-offset", []Edit{{0, 0, []byte("A: 1\r\n")}, {0, 13, []byte("Subject: x\r\n")}},
			"A: 1\r\nSubject: x\r\nX-A: 1\r\n\r\nbody\r\n", nil},
		{"two-inserts-same-offset", []Edit{{0, 0, []byte("A\r\n")}, {0, 0, []byte("B\r\n")}}, "A\r\nB\r\n" + src, nil},
		{"adjacent", []Edit{{0, 13, []byte("1")}, {13, 21, []byte("2")}}, "12\r\nbody\r\n", nil},
		{"replace-at-end", []Edit{{23, int64(len(src)), []byte("new\r\n")}}, "Subject: hi\r\nX-A: 1\r\n\r\nnew\r\n", nil},
		{"overlap", []Edit{{0, 14, nil}, {13, 21, nil}}, "", ErrEditOrder},
		{"unsorted", []Edit{{13, 21, nil}, {0, 5, nil}}, "", ErrEditOrder},
		{"insert-inside-replacement", []Edit{{0, 13, nil}, {5, 5, []byte("x")}}, "", ErrEditOrder},
		{"end-before-start", []Edit{{5, 4, nil}}, "", ErrEditOrder},
		{"negative", []Edit{{-1, 0, nil}}, "", ErrEditOrder},
		{"past-end", []Edit{{100, 100, []byte("x")}}, "", ErrEditRange},
		{"end-past-end", []Edit{{20, 100, nil}}, "", ErrEditRange},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, shape := range []struct {
				name string
				wrap func(r *strings.Reader) interface{ Read([]byte) (int, error) }
			}{
				{"plain", func(r *strings.Reader) interface{ Read([]byte) (int, error) } { return r }},
				{"onebyte", func(r *strings.Reader) interface{ Read([]byte) (int, error) } { return iotest.OneByteReader(r) }},
				{"half", func(r *strings.Reader) interface{ Read([]byte) (int, error) } { return iotest.HalfReader(r) }},
			} {
				var out bytes.Buffer
				n, err := Splice(&out, shape.wrap(strings.NewReader(src)), tc.edits)
				if tc.err != nil {
					if !errors.Is(err, tc.err) {
						t.Fatalf("%s: err = %v, want %v", shape.name, err, tc.err)
					}
					if errors.Is(tc.err, ErrEditOrder) && out.Len() != 0 {
						t.Fatalf("%s: wrote %d bytes before rejecting bad edits", shape.name, out.Len())
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", shape.name, err)
				}
				if out.String() != tc.want {
					t.Fatalf("%s: got %q, want %q", shape.name, out.String(), tc.want)
				}
				if n != int64(out.Len()) {
					t.Fatalf("%s: n = %d, wrote %d", shape.name, n, out.Len())
				}
			}
		})
	}
}

func TestSpliceReadError(t *testing.T) {
	var out bytes.Buffer
	_, err := Splice(&out, iotest.DataErrReader(iotest.ErrReader(iotest.ErrTimeout)), []Edit{{0, 0, []byte("x")}})
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

// FuzzSplice derives a sorted, non-overlapping edit list from the fuzz input
// and checks the splice against an in-memory reference: no edits → identical
// bytes; bytes outside the edits identical and in order.
func FuzzSplice(f *testing.F) {
	f.Add([]byte("Subject: hi\r\n\r\nbody\r\n"), []byte{0, 3, 1, 4, 2, 0})
	f.Add([]byte(""), []byte{})
	f.Add([]byte("abc"), []byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte("0123456789"), []byte{9, 1, 5, 2, 0, 3, 7, 7})
	f.Fuzz(func(t *testing.T, src, plan []byte) {
		var out bytes.Buffer
		if _, err := Splice(&out, bytes.NewReader(src), nil); err != nil || !bytes.Equal(out.Bytes(), src) {
			t.Fatalf("no edits: err %v, output differs", err)
		}
		// Build edits: each pair of plan bytes is (gap, length) from the previous end.
		var edits []Edit
		var pos int64
		for i := 0; i+1 < len(plan) && len(edits) < 32; i += 2 {
			start := pos + int64(plan[i]%8)
			end := start + int64(plan[i+1]%8)
			if end > int64(len(src)) {
				break
			}
			edits = append(edits, Edit{start, end, []byte{'<', byte('a' + len(edits)%26), '>'}})
			pos = end
		}
		// Reference.
		var want []byte
		pos = 0
		for _, e := range edits {
			want = append(want, src[pos:e.Start]...)
			want = append(want, e.Data...)
			pos = e.End
		}
		want = append(want, src[pos:]...)
		out.Reset()
		n, err := Splice(&out, iotest.HalfReader(bytes.NewReader(src)), edits)
		if err != nil {
			t.Fatalf("Splice: %v (edits %v)", err, edits)
		}
		if !bytes.Equal(out.Bytes(), want) || n != int64(len(want)) {
			t.Fatalf("got %q, want %q", out.Bytes(), want)
		}
	})
}
