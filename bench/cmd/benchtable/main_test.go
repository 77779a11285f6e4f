package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkParse/small-text/mimeparse-2   	  100	  1000 ns/op	 300.00 MB/s	  100 B/op	  3 allocs/op
BenchmarkParse/small-text/mimeparse-2   	  100	  1000 ns/op	 320.00 MB/s	  100 B/op	  3 allocs/op
BenchmarkParse/small-text/mimeparse-2   	  100	  1000 ns/op	 100.00 MB/s	  100 B/op	  5 allocs/op
BenchmarkParse/small-text/stdlib-2      	  100	  1000 ns/op	 200.00 MB/s	  900 B/op	 39 allocs/op
BenchmarkParse/small-text/go-message-2  	  100	  1000 ns/op	 100.00 MB/s	  900 B/op	 71 allocs/op
BenchmarkParse/small-text/raw-2         	  100	  1000 ns/op	1000.00 MB/s	    0 B/op	  0 allocs/op
`

func TestParseAndWrite(t *testing.T) {
	res, shapes, parsers, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	mp := res[key{"small-text", "mimeparse"}]
	if mp.MBs != 300 || mp.Allocs != 3 || mp.N != 3 {
		t.Fatalf("mimeparse medians %+v, want 300 MB/s, 3 allocs, 3 runs", mp)
	}
	if strings.Join(shapes, ",") != "small-text" || strings.Join(parsers, ",") != "mimeparse,stdlib,go-message,raw" {
		t.Fatalf("shapes %v parsers %v", shapes, parsers)
	}
	var b bytes.Buffer
	Write(&b, res, shapes, parsers)
	out := b.String()
	for _, want := range []string{
		"| small-text | stdlib | 200.0 | 39 | 900 | 1 | 1.50x |",
		"| small-text | stdlib (200.0 MB/s) | 1.50x | 0.30x |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
