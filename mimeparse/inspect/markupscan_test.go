package inspect

import (
	"bytes"
	"strings"
	"testing"
)

// refWorthTokenizing is the quick pass as first written (eight
// bytes.Contains and a handler scan): the reference the one-pass
// markupScan must agree with.
func refWorthTokenizing(src readerAtSize) bool {
	pb := getCarrierBuf()
	defer putCarrierBuf(pb)
	const overlap = 16
	buf := (*pb)[:min(int64(cap(*pb)), 64<<10+overlap)]
	size := src.Size()
	for off := int64(0); off < size; off += 64 << 10 {
		n, _ := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		b := buf[:n]
		for i, c := range b {
			if c >= 'A' && c <= 'Z' {
				b[i] = c + 32
			}
		}
		for _, nd := range refNeedles {
			if bytes.Contains(b, nd) {
				return true
			}
		}
		if refHasHandler(b) {
			return true
		}
	}
	return false
}

// refHasHandler reports an attribute that looks like an event handler:
// white space, "on", letters, optional white space, "=" (lower-cased b).
func refHasHandler(b []byte) bool {
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("on"))
		if j < 0 {
			return false
		}
		k := i + j
		i = k + 2
		if k == 0 || !(b[k-1] == ' ' || b[k-1] == '\t' || b[k-1] == '\n' || b[k-1] == '\r' || b[k-1] == '/' || b[k-1] == '"' || b[k-1] == '\'') {
			continue
		}
		e := i
		for e < len(b) && b[e] >= 'a' && b[e] <= 'z' {
			e++
		}
		if e == i {
			continue
		}
		for e < len(b) && (b[e] == ' ' || b[e] == '\t' || b[e] == '\n' || b[e] == '\r') {
			e++
		}
		if e < len(b) && b[e] == '=' {
			return true
		}
	}
}

// refNeedles are the strings the first quick pass looked for.
var refNeedles = [][]byte{[]byte("script"), []byte("data:"), []byte("search"), []byte("file:"), []byte(`\\`), []byte("refresh"), []byte("&#"), []byte("%5c")}

// TestMarkupScan: the one-pass scan says what the reference says, on
// hand-made pages and on each needle and handler at every offset.
func TestMarkupScan(t *testing.T) {
	cases := []string{"", "<p>plain text about nothing</p>", "<SCRIPT>", "x data: y", "a search b", "file:", `\\host`,
		"http-equiv=REFRESH", "&#x6a;", "%5C", `<a onclick="x">`, "<a on=x>", "<a only>", `<img/onerror =1>`, "on", "o",
		"lesson one", "<p>\tonload=</p>", "non=1", "<A ONCLICK=x>", "<a\nOnLoad =1>", "SeArCh", "%5C%5c", "\\\\", "Dat", "%5", "&", "o=", " ON=", "<a\tONCLICK\n=x>", "reFRESH", "SEARCH-ms:", "DATA:x", "File:", "on=", " on=", "=", "a=b", " onx=", "xonclick=", strings.Repeat("s", 100) + "script"}
	for _, c := range cases {
		want := refWorthTokenizing(bytes.NewReader([]byte(c)))
		if got := markupScan([]byte(c)); got != want {
			t.Errorf("%q: markupScan %v, reference %v", c, got, want)
		}
		if got := markupScan(lower(c)); got != want {
			t.Errorf("%q lower-cased: markupScan %v, reference %v", c, got, want)
		}
	}
	for _, nd := range []string{"script", "data:", "search", "file:", `\\`, "refresh", "&#", "%5c", " onload=", "'onx ="} {
		for pad := 0; pad < 20; pad++ {
			c := strings.Repeat("a", pad) + nd + strings.Repeat("b", 20-pad)
			if !markupScan([]byte(c)) || !markupScan([]byte(strings.ToUpper(c))) {
				t.Errorf("%q not found in either case", c)
			}
		}
	}
}

// FuzzMarkupScan: the one-pass scan agrees with the reference on any page.
func FuzzMarkupScan(f *testing.F) {
	for _, s := range []string{"<html><body onload=x>", "<script>", "search-ms:", "a&#106;", `\\a\b`, "DaTa:", "\ton =", "o"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, page []byte) {
		if len(page) > 60<<10 {
			return // one chunk: the chunking is the caller's, shared by both
		}
		want := refWorthTokenizing(bytes.NewReader(page))
		if got := markupScan(bytes.Clone(page)); got != want {
			t.Fatalf("%q: markupScan %v, reference %v", page, got, want)
		}
	})
}

func lower(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return b
}
