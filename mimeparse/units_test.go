package mimeparse

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestMatchDelimiter(t *testing.T) {
	tests := []struct {
		line    string
		isClose bool
		ok      bool
	}{
		{"--b\r\n", false, true},
		{"--b\n", false, true},
		{"--b", false, true},
		{"--b--\r\n", true, true},
		{"--b-- \t\r\n", true, true},
		{"--b  \n", false, true},
		{"--bc\r\n", false, false}, // a longer boundary is another boundary
		{"--b x\r\n", false, false},
		{"-b\r\n", false, false},
		{"--B\r\n", false, false}, // boundaries are case-sensitive (RFC 2046 §5.1.1)
		{"--b---\r\n", false, false},
	}
	for _, tc := range tests {
		c, ok := matchDelimiter([]byte(tc.line), []byte("b"))
		if c != tc.isClose || ok != tc.ok {
			t.Errorf("%q: got %v %v, want %v %v", tc.line, c, ok, tc.isClose, tc.ok)
		}
	}
}

func TestParseMediaHeader(t *testing.T) {
	type kv = [2]string
	tests := []struct {
		in      string
		value   string
		params  []kv
		defects []string
	}{
		{`text/plain; charset="utf-8"`, "text/plain", []kv{{"charset", "utf-8"}}, nil},
		{`Text/HTML;Charset=ISO-8859-1 (comment)`, "text/html", []kv{{"charset", "ISO-8859-1 (comment)"}}, nil},
		{`attachment; filename="a \"q\".txt"`, "attachment", []kv{{"filename", `a "q".txt`}}, nil},
		{`attachment; filename=file(1).exe`, "attachment", []kv{{"filename", "file(1).exe"}}, nil},
		{`attachment; filename=my file.exe; size=3`, "attachment", []kv{{"filename", "my file.exe"}, {"size", "3"}}, nil},
		{`attachment; filename*=UTF-8'en'%E2%82%AC.txt`, "attachment", []kv{{"filename", "€.txt"}}, nil},
		{`attachment; filename*0="a"; filename*1*=%41; filename*2=".x"`, "attachment", []kv{{"filename", "aA.x"}}, nil},
		{`attachment; filename*1="b"; filename*0="a"`, "attachment", []kv{{"filename", "ab"}}, nil},
		{`attachment; filename*0="a"; filename*2="c"`, "attachment", []kv{{"filename", "ac"}}, []string{DefectBrokenRFC2231}},
		{`attachment; filename*=x-bogus''%41`, "attachment", []kv{{"filename", "A"}}, []string{DefectUnknownCharset}},
		{`attachment; filename="a.pdf"; filename*=utf-8''b.exe`, "attachment", []kv{{"filename", "b.exe"}}, []string{DefectMixedRFC2231}},
		{`multipart/mixed; boundary=a; boundary=b`, "multipart/mixed", []kv{{"boundary", "a"}}, []string{DefectMultipleBoundaries}},
		{`x/y; a=1; a=2`, "x/y", []kv{{"a", "1"}}, []string{DefectDuplicateParameter}},
		{`x/y; name="=?utf-8?Q?caf=C3=A9?="`, "x/y", []kv{{"name", "café"}}, []string{DefectEncodedWordInParameter}},
		{`x/y; junk; ; =v; a="unterminated`, "x/y", []kv{{"a", "unterminated"}}, nil},
	}
	for _, tc := range tests {
		m := parseMediaHeader(tc.in)
		if m.value != tc.value {
			t.Errorf("%q: value %q, want %q", tc.in, m.value, tc.value)
		}
		var got []kv
		for _, p := range m.params {
			got = append(got, kv{p.name, p.value})
		}
		if !reflect.DeepEqual(got, tc.params) {
			t.Errorf("%q: params %q, want %q", tc.in, got, tc.params)
		}
		if !reflect.DeepEqual(m.defects, tc.defects) {
			t.Errorf("%q: defects %q, want %q", tc.in, m.defects, tc.defects)
		}
	}
}

func TestDecodeHeaderWords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"=?utf-8?q?a_b?=", "a b"},
		{"=?utf-8?q?a?= =?utf-8?q?b?=", "ab"},      // RFC 2047 §6.2: space between words dropped
		{"=?utf-8?q?a?= x =?utf-8?q?b?=", "a x b"}, // kept next to text
		{"=?ISO-8859-1?B?Y2Fm6Q==?=", "café"},
		{"=?utf-8*en?Q?x?=", "x"}, // RFC 2231 language suffix
		{"=?utf-8?Q?has space?=", "=?utf-8?Q?has space?="},
		{"=?utf-8?X?bad?=", "=?utf-8?X?bad?="},
		{"pre=?utf-8?Q?x?=post", "prexpost"},
		{"=?windows-1251?B?8ffl8g==?=", "счет"},
	}
	for _, tc := range tests {
		if got, _ := decodeHeaderWords(tc.in); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"a.EXE": "exe", "a.tar.gz": "gz", "a.exe. . ": "exe", "noext": "", "dir.d/file": "",
		`C:\x.y\evil.scr`: "scr", "trailing.": "", ".hidden": "hidden",
	} {
		if got := extOf(in); got != want {
			t.Errorf("extOf(%q) = %q, want %q", in, got, want)
		}
	}
	tcompare(t, hasBidi("photo\u202egpj.exe"), true)
	tcompare(t, hasBidi("plain.pdf"), false)
	tcompare(t, typeMismatch("image/jpeg", "application/vnd.microsoft.portable-executable", true), true)
	tcompare(t, typeMismatch("application/octet-stream", "application/vnd.microsoft.portable-executable", true), false)
	tcompare(t, typeMismatch("image/png", "application/zip", false), true)
	tcompare(t, typeMismatch("application/pdf", "text/plain", false), false)
	tcompare(t, typeMismatch("application/pdf", "application/zip", false), true)
	tcompare(t, typeMismatch("application/zip", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", false), false)
	tcompare(t, typeMismatch("application/x-zip-compressed", "application/zip", false), false)
	tcompare(t, typeMismatch("application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", false), false)
	tcompare(t, typeMismatch("application/x-unknown-thing", "application/zip", false), false)
}

func TestFieldNameEnd(t *testing.T) {
	for in, want := range map[string]int{
		"Subject: x": 7, "X-A:b": 3, "Subject : x": 8, "Subject\t: x": 8, ": x": 0,
		"no colon here": -1, " lead: x": -1, "Bad\x01: x": -1,
	} {
		got, ok := fieldNameEnd([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
}

// TestFieldKey: fieldKey reads a field name as strings.ToLower does, for
// the names describe switches on, without allocating for ASCII names.
func TestFieldKey(t *testing.T) {
	for _, name := range []string{"Content-Type", "content-type", "CONTENT-TYPE", "Content-Transfer-Encoding",
		"content-DISPOSITION", "Content-Dİsposition", "Content-Typ", "Content-Types", "X-Content-Type", "",
		"Content-Type\xff", "Subject", "Content-Type "} {
		got := fieldKey(name)
		want := strings.ToLower(name)
		isDescribed := slices.Contains(describedFields[:], want)
		if isDescribed && got != want || !isDescribed && slices.Contains(describedFields[:], got) {
			t.Errorf("fieldKey(%q) = %q, strings.ToLower gives %q", name, got, want)
		}
	}
	if n := testing.AllocsPerRun(10, func() { fieldKey("Content-Transfer-Encoding") }); n != 0 {
		t.Errorf("fieldKey allocates %v times for an ASCII name", n)
	}
}

// TestMediaHeaderFastPath: resolvePlain gives what the general resolve
// gives for every Content-Type and Content-Disposition of every fixture
// (and of the corpus when present).
func TestMediaHeaderFastPath(t *testing.T) {
	var raws [][]byte
	for _, f := range sniffFixtureFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
	}
	if _, err := os.Stat(corpusDir); err == nil {
		_, more := corpusMessages(t)
		raws = append(raws, more...)
	}
	n := 0
	for _, raw := range raws {
		m, err := Parse(bytes.NewReader(raw), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Parts {
			for _, f := range p.Fields {
				if k := fieldKey(f.Name); k != "content-type" && k != "content-disposition" {
					continue
				}
				n++
				s := unfold(f.Raw)
				if fast, slow := parseMediaHeader(s), parseMediaHeaderWith(s, false); !reflect.DeepEqual(fast, slow) {
					t.Errorf("%q: fast path %+v, general resolve %+v", s, fast, slow)
				}
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d media headers checked", n)
	}
}

// TestFieldSlab: header blocks share slabs of Fields; no block's fields may
// be overwritten by a later block's, across several slabs, a block larger
// than a slab, and a part header without fields.
func TestFieldSlab(t *testing.T) {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
	for i := range 60 {
		b.WriteString("--b\r\n")
		switch {
		case i == 7:
			b.WriteString("\r\n") // no fields
		case i == 20:
			for j := range 50 {
				b.WriteString("X-Many: " + itoa(j) + "\r\n")
			}
			b.WriteString("X-N: 20\r\n\r\n")
		default:
			b.WriteString("X-N: " + itoa(i) + "\r\nContent-Type: text/plain\r\n\r\n")
		}
		b.WriteString("body\r\n")
	}
	b.WriteString("--b--\r\n")
	m, err := Parse(strings.NewReader(b.String()), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header("From"); got != "a@example.org" {
		t.Errorf("From = %q", got)
	}
	for i := range 60 {
		p := findPart(m, itoa(i+1))
		if p == nil {
			t.Fatalf("no part %d", i+1)
		}
		want := itoa(i)
		if i == 7 {
			want = ""
			if p.Fields != nil {
				t.Errorf("part 8: fields %v, want none", p.Fields)
			}
		}
		got := ""
		for _, f := range p.Fields {
			if f.Name == "X-N" {
				got = f.Value
			}
		}
		if got != want {
			t.Errorf("part %d: X-N %q, want %q (fields %v)", i+1, got, want, p.Fields)
		}
	}
}

func TestIndexBlank(t *testing.T) {
	for _, s := range []string{"", "Subject", "Sub ject", "Sub\tject", " x", "x\t", "a\u00a0b", "\xff \t"} {
		if got, want := indexBlank(s), strings.IndexAny(s, " \t"); got != want {
			t.Errorf("indexBlank(%q) = %d, want %d", s, got, want)
		}
	}
}
