package mimeparse

import (
	"bytes"
	"encoding/base64"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzParse checks properties, not only the absence of panics: the parse
// covers every byte, offsets are ordered and nested inside the parent,
// unencoded bodies are exactly the bytes between their offsets, and reading
// one byte at a time gives the same result.
func FuzzParse(f *testing.F) {
	for _, file := range fixtures(f) {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		lim := DefaultLimits()
		lim.MimeParts = 50
		m, err := Parse(bytes.NewReader(raw), lim)
		if err != nil {
			t.Fatal(err)
		}
		checkOffsets(t, "fuzz", raw, m)
		var prev int64
		for i, p := range m.Parts {
			if p.Reading == "" { // parts of other readings have their carrier's offsets
				if p.HeaderOffset < prev {
					t.Fatalf("part %s starts at %d before the previous part (%d)", p.Path, p.HeaderOffset, prev)
				}
				prev = p.HeaderOffset
			}
			if i > 0 && p.Depth > m.Parts[i-1].Depth+1 {
				t.Fatalf("part %s skips a level", p.Path)
			}
			if i == 0 && p.Parent != -1 {
				t.Fatalf("root %s has parent %d", p.Path, p.Parent)
			}
			if c := m.Carrier(i); c != i == !decodedOnly(m, p) || m.Parts[c].HeaderOffset != p.HeaderOffset ||
				m.Parts[c].BodyOffset != p.BodyOffset || m.Parts[c].EndOffset != p.EndOffset {
				t.Fatalf("part %s: carrier %d (%s) does not hold its bytes", p.Path, c, m.Parts[c].Path)
			}
			for j := i - 1; j >= 0; j-- { // the parent contains the part
				q := m.Parts[j]
				if q.Depth == p.Depth-1 {
					if p.Parent != j {
						t.Fatalf("part %s: Parent %d, want %d (%s)", p.Path, p.Parent, j, q.Path)
					}
					if p.HeaderOffset < q.BodyOffset && !decodedOnly(m, p) ||
						p.EndOffset > q.EndOffset {
						t.Fatalf("part %s [%d,%d) outside its parent %s [%d,%d)", p.Path, p.HeaderOffset, p.EndOffset, q.Path, q.BodyOffset, q.EndOffset)
					}
					break
				}
			}
		}
		if len(m.Parts) == 0 {
			t.Fatal("no parts")
		}
		for _, p := range m.Parts { // what policies compare is valid UTF-8
			if !utf8.ValidString(p.Filename + p.Ext + p.Charset + p.TransferEncoding + strings.Join(p.Names, "")) {
				t.Fatalf("part %s: invalid UTF-8 name %q %q", p.Path, p.Filename, p.Names)
			}
		}
		for _, f := range m.Fields {
			if !utf8.ValidString(f.Value) {
				t.Fatalf("field %s: invalid UTF-8 value", f.Name)
			}
		}
		// ScanHeader re-reads the top-level header block as Parse read it
		// (rules.Rewrite edits through it when HeaderTruncated).
		var all []Field
		if err := ScanHeader(bytes.NewReader(raw[:m.Parts[0].BodyOffset]), func(f Field) { all = append(all, f) }); err != nil {
			t.Fatal(err)
		}
		if len(all) < len(m.Fields) || !m.HeaderTruncated && len(all) != len(m.Fields) ||
			len(m.Fields) > 0 && !reflect.DeepEqual(all[:len(m.Fields)], m.Fields) {
			t.Fatalf("ScanHeader: %d fields, Parse %d (truncated %v), or they differ", len(all), len(m.Fields), m.HeaderTruncated)
		}
		for _, f := range all[len(m.Fields):] {
			if !m.HasHeader(f.Name) && len(all) < 2*maxFields && len(raw) < maxLateBytes {
				t.Fatalf("HasHeader(%q) false for a field past the index", f.Name)
			}
		}
		one, err := Parse(iotest.OneByteReader(bytes.NewReader(raw)), lim)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, m) {
			t.Fatal("one byte at a time gives a different result")
		}
	})
}

// FuzzDecoders: base64 and quoted-printable decoding does not depend on how
// the input is cut into writes.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte("SGVsbG8s\r\nIHdvcmxk IQ==\r\n"), 3)
	f.Add([]byte("a=\r\nb=3D=ZZ=4=\r=\n"), 1)
	f.Add([]byte("QQ==QUJD*\n=="), 2)
	f.Add([]byte("0\r0\r0\r=\r0"), 1) // padding found behind a carriage return
	f.Fuzz(func(t *testing.T, in []byte, n int) {
		if n <= 0 || n > 64 {
			n = 1
		}
		for _, kind := range []string{"base64", "quoted-printable"} {
			whole, d1 := decodeAll(kind, [][]byte{in})
			var chunks [][]byte
			for b := in; len(b) > 0; {
				k := min(n, len(b))
				chunks = append(chunks, b[:k])
				b = b[k:]
			}
			cut, d2 := decodeAll(kind, chunks)
			if !bytes.Equal(whole, cut) || !reflect.DeepEqual(d1, d2) {
				t.Fatalf("%s: %q decodes to %q %v whole, %q %v in %d-byte writes", kind, in, whole, d1, cut, d2, n)
			}
		}
	})
}

func decodeAll(kind string, chunks [][]byte) ([]byte, []string) {
	var out bytes.Buffer
	pend, buf := make([]byte, 0, decodeChunk), make([]byte, decodeChunk)
	if kind == "base64" {
		var d b64Writer
		d.reset(&out, pend, buf)
		for _, c := range chunks {
			d.Write(c)
		}
		ds := d.close() // before out.Bytes: close writes the last bytes
		return out.Bytes(), ds
	}
	var d qpWriter
	d.reset(&out, buf)
	for _, c := range chunks {
		d.Write(c)
	}
	ds := d.close()
	return out.Bytes(), ds
}

// FuzzMediaHeader: parameter parsing never panics and names stay valid UTF-8.
func FuzzMediaHeader(f *testing.F) {
	for _, s := range []string{
		`text/plain; charset="utf-8"`,
		`attachment; filename*0*=UTF-8''%E2%82%AC; filename*1="x.txt"; filename=a.exe`,
		`multipart/mixed; boundary=a; boundary=b`,
		`application/pdf; name="=?utf-8?B?0YHRh9C10YIucGRm?="`,
		`x; a*=bad'; b*0=1; b*2=3`,
		`text/plain; Charset=us-ascii; format=flowed; delsp=yes`,
		`attachment; filename="a.pdf"; name==?utf-8?q?b.exe?=`,
		`text/plain; charset=a; CHARSET=b`,
		`a; p1=1; p2=2; p3=3; p4=4; p5=5; p6=6; p7=7; p8=8; p9=9`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := parseMediaHeader(s)
		if slow := parseMediaHeaderWith(s, false); !reflect.DeepEqual(m, slow) {
			t.Fatalf("%q: fast path %+v, general resolve %+v", s, m, slow)
		}
		for _, p := range m.params {
			if len(p.all) == 0 || p.all[0] != p.value && !slices.Contains(p.all, p.value) {
				t.Fatalf("%q: value %q not among %q", s, p.value, p.all)
			}
		}
		v, _ := decodeHeaderWords(s)
		_ = v
	})
}

// FuzzB64Ref: b64Writer, with segmentio/asm's decoder and small buffers,
// decodes every input, cut into writes of any size, to the bytes and
// defects of a b64Writer with the standard library's decoder given it
// whole.
func FuzzB64Ref(f *testing.F) {
	f.Add([]byte("SGVsbG8s\r\nIHdvcmxk IQ==\r\n"), 3, 0)
	f.Add([]byte("QUJD\r\nREVG\nR0hJ\r\r\nSks=\r\nQUJD"), 5, 2)
	f.Add([]byte("QQ==QUJD*\n=="), 2, 1)
	f.Add([]byte("QUJDREVGR0hJ\r\nSktMTU5PUFFS\r\n"), 7, 0)
	// Long enough for the AVX2 loop (45 characters and more in one call).
	f.Add([]byte("pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU8\r\n1lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG\r\n+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VIL\r\nablLDZguhbtVtnKocmN6zXRm/LYODo/xhGOw5LK6KXA0dPBkrGj3APWwKz3GZvRb3qosyu3NK1FX\r\nQQ5N7krys09DCgc0R95jbA6AbJV7poTWQx+16tdCTQnhXQJMWEjyPR+m9zYdf2GNFTLnDiDipmaN\r\n5/R+hGflRtU+yOKhJXvbJWybPk+7SYFG73Awy/lTclLczq3XZLajL7sJrerhCcSplyA5dTUrh4sU\r\nXIpC2ITPTP2nLY4dXdkliQgthSpxIoc+6AWt1YlCFno4UoYZXGefnGmU5FuKsQmAEgcJYfN95Dbd\r\n/cmdbnWvZUfPsRtCBySC3FMcK8OQfJYX615QieQBhrqopX0Rnm+2XQCrwyrzjmZ/Ai6HLUnMFckL\r\nmZt3K0/Hpv1MkUoW20cIdSsPFUS4NcDnGQl9+ocB6SMvIfKBJod4aXbr/MMn9ZMXZSdLqYKbRAb2\r\nH/iJMm/6lJLt7u48Zp8r8giU6ifmicZrayYuSIa4Q485unb++MkMUQH75s+aSNWwwKE9qQCmrcs9\r\nZAaUgb4hyccnuNuMGI80GpJMf4jfoWG/2w7MaCkZ\r\n"), 64, 5)
	f.Add([]byte("pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRq"), 64, 1000)
	f.Add([]byte("pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+T*n7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VILablLDZguhbtV"), 50, 1000)
	f.Add([]byte("pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIh==H57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRq"), 64, 1000)
	f.Fuzz(func(t *testing.T, in []byte, n, outSize int) {
		if n <= 0 || n > 64 {
			n = 1
		}
		var want bytes.Buffer
		var ref b64Writer
		ref.reset(&want, make([]byte, 0, decodeChunk), make([]byte, decodeChunk))
		ref.decode = base64.StdEncoding.Decode
		ref.Write(in)
		wantD := ref.close()

		var got bytes.Buffer
		var d b64Writer
		// Small pending and output buffers make both paths' refills happen
		// inside short inputs.
		outSize &= 1<<16 - 1
		pend, out := 16+outSize%64*4, 8+outSize%61*3
		d.reset(&got, make([]byte, 0, pend), make([]byte, max(out, pend/4*3)))
		for b := in; len(b) > 0; {
			k := min(n, len(b))
			d.Write(b[:k])
			b = b[k:]
		}
		gotD := d.close()
		if !bytes.Equal(got.Bytes(), want.Bytes()) || !reflect.DeepEqual(gotD, wantD) {
			t.Fatalf("%q in %d-byte writes: %q %v, with the standard library's decoder %q %v", in, n, got.Bytes(), gotD, want.Bytes(), wantD)
		}

		// The line fast path (whole CRLF lines copied without a search)
		// changes nothing: one write without it gives the same.
		var slow bytes.Buffer
		var s b64Writer
		s.reset(&slow, make([]byte, 0, decodeChunk), make([]byte, decodeChunk))
		s.decode, s.lineLen = base64.StdEncoding.Decode, -1
		s.Write(in)
		if slowD := s.close(); !bytes.Equal(slow.Bytes(), want.Bytes()) || !reflect.DeepEqual(slowD, wantD) {
			t.Fatalf("%q: %q %v, without the line fast path %q %v", in, want.Bytes(), wantD, slow.Bytes(), slowD)
		}
	})
}
