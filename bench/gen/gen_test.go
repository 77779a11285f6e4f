package gen

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestShapesDeterministicAndSized(t *testing.T) {
	want := map[string][2]int{ // min, max bytes on the wire
		"small-text":       {1900, 2200},
		"html-alternative": {10000, 16000},
		"attach-1mb":       {1 << 20, 1500 << 10},
		"multi-20mb":       {19 << 20, 22 << 20},
		"nested-50":        {10000, 30000},
		"2k-text":          {1900, 2200},
		"100k-html-image":  {90 << 10, 120 << 10},
		"1m-pdf":           {950 << 10, 1100 << 10},
	}
	for _, l := range [][]Shape{ParserShapes, ProxyShapes} {
		for _, s := range l {
			a := s.Make()
			// The 20 MB shape is built once (seconds); the others twice.
			if s.Name != "multi-20mb" && sha256.Sum256(a) != sha256.Sum256(s.Make()) {
				t.Errorf("%s: two builds differ", s.Name)
			}
			w, ok := want[s.Name]
			if !ok {
				t.Errorf("%s: no expected size", s.Name)
				continue
			}
			if len(a) < w[0] || len(a) > w[1] {
				t.Errorf("%s: %d bytes, want %d..%d", s.Name, len(a), w[0], w[1])
			}
			if bytes.Contains(bytes.ReplaceAll(a, []byte("\r\n"), nil), []byte("\n")) {
				t.Errorf("%s: bare LF", s.Name)
			}
		}
	}
}
