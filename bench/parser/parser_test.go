package parser

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"mailgate/bench/gen"
)

var (
	shapesMu   sync.Mutex
	shapeBytes = map[string][]byte{}
)

// shape builds a shape once, on first use (the 20 MB one costs a second).
func shape(b testing.TB, name string) []byte {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	if m, ok := shapeBytes[name]; ok {
		return m
	}
	s, ok := gen.Lookup(name)
	if !ok {
		b.Fatalf("no shape %q", name)
	}
	shapeBytes[name] = s.Make()
	return shapeBytes[name]
}

// TestSameWork checks that every parser finds the same leaves, with the same
// decoded sizes and hashes, on every shape: the benchmark compares equal
// work. The 20 MB shape runs only with BENCH_FULL=1 (it costs seconds).
func TestSameWork(t *testing.T) {
	for _, s := range gen.ParserShapes {
		if s.Name == "multi-20mb" && os.Getenv("BENCH_FULL") == "" {
			continue
		}
		raw := shape(t, s.Name)
		ref, err := Stdlib(raw)
		if err != nil {
			t.Fatalf("%s: stdlib: %v", s.Name, err)
		}
		if want := wantLeaves(s.Name); len(ref) != want {
			t.Errorf("%s: stdlib found %d leaves, want %d", s.Name, len(ref), want)
		}
		for _, p := range Parsers[1:] {
			got, err := p.Parse(raw)
			if err != nil {
				t.Errorf("%s/%s: %v", s.Name, p.Name, err)
				continue
			}
			if !sameLeaves(got, ref) {
				t.Errorf("%s/%s: leaves %v, stdlib %v", s.Name, p.Name, got, ref)
			}
		}
		got, err := Mimeparse(raw)
		if errors.Is(err, ErrNotImplemented) {
			t.Logf("%s/mimeparse: %v", s.Name, err)
			continue
		}
		if err != nil {
			t.Errorf("%s/mimeparse: %v", s.Name, err)
		} else if !sameLeaves(got, ref) {
			t.Errorf("%s/mimeparse: leaves %v, stdlib %v", s.Name, got, ref)
		}
	}
}

func wantLeaves(name string) int {
	switch name {
	case "small-text":
		return 1
	case "html-alternative", "attach-1mb":
		return 2
	case "multi-20mb":
		return 6
	case "nested-50":
		return gen.NestedDepth + 1
	}
	return -1
}

func sameLeaves(a, b []Leaf) bool {
	// Compared as multisets: the order of the walk is not what is measured.
	key := func(l []Leaf) []string {
		s := make([]string, len(l))
		for i, x := range l {
			s[i] = fmt.Sprintf("%d:%s", x.Size, x.SHA256)
		}
		slices.Sort(s)
		return s
	}
	return slices.Equal(key(a), key(b))
}

func TestRaw(t *testing.T) {
	src := FlatBase64(4096)
	dst := make([]byte, len(src))
	if _, err := Raw(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := Raw([]byte("!!!!"), dst); err == nil {
		t.Fatal("Raw accepted invalid base64")
	}
}

// BenchmarkParse runs every parser on every shape: parse, decode every leaf,
// SHA-256 every leaf. Bytes/s is of the raw message. "raw" is the ceiling:
// base64-decode a flat buffer of the same length and hash the result.
func BenchmarkParse(b *testing.B) {
	for _, s := range gen.ParserShapes {
		for _, p := range Parsers {
			b.Run(s.Name+"/"+p.Name, func(b *testing.B) {
				raw := shape(b, s.Name)
				if _, err := p.Parse(raw); err != nil {
					if errors.Is(err, ErrNotImplemented) {
						b.Skip(err)
					}
					b.Fatal(err)
				}
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				b.ResetTimer()
				start := cpuNow()
				for i := 0; i < b.N; i++ {
					if _, err := p.Parse(raw); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, start, len(raw))
			})
		}
		b.Run(s.Name+"/raw", func(b *testing.B) {
			src := FlatBase64(len(shape(b, s.Name)))
			dst := make([]byte, len(src))
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			b.ResetTimer()
			start := cpuNow()
			for i := 0; i < b.N; i++ {
				if _, err := Raw(src, dst); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start, len(src))
		})
	}
}
