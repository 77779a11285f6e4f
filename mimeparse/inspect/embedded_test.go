package inspect

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func embShape(es []Embedded) []string {
	out := []string{}
	for _, e := range es {
		s := string(e.Kind) + ":" + e.Name + ":" + e.Result.DetectedType
		if e.Result.Executable {
			s += ":x"
		}
		out = append(out, s)
	}
	return out
}

func TestTNEF(t *testing.T) {
	pe := minimalPE()
	pdf := []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
	inner := buildTNEF(tnefAtt{title: "deep.exe", data: pe})
	cases := []struct {
		name    string
		body    []byte
		opts    Options
		want    []string
		defects []string
	}{
		{"two", buildTNEF(tnefAtt{title: "INVOIC~1.PDF", long: "invoice.pdf", data: pdf}, tnefAtt{title: "run.exe", data: pe}),
			Options{Name: "winmail.dat"}, []string{"t:invoice.pdf:application/pdf", "t:run.exe:application/vnd.microsoft.portable-executable:x"}, nil},
		{"zip-inside", buildTNEF(tnefAtt{title: "a.zip", data: buildZip(t, zent{name: "b.exe", data: pe})}),
			Options{}, []string{"t:a.zip:application/zip"}, nil},
		{"tnef-in-tnef", buildTNEF(tnefAtt{title: "winmail.dat", data: inner}),
			Options{}, []string{"t:winmail.dat:application/vnd.ms-tnef"}, nil},
		{"truncated", buildTNEF(tnefAtt{title: "x.exe", data: pe})[:200],
			Options{}, []string{"t:x.exe:application/vnd.microsoft.portable-executable:x"}, []string{DefectTNEFCorrupt}},
		{"embedded-message", buildTNEF(tnefAtt{title: "Untitled Attachment", data: []byte("This attachment is a MAPI 1.0 embedded message"), obj: inner, objType: 0x000D}),
			Options{}, []string{"t:Untitled Attachment:text/plain", "t:Untitled Attachment:application/vnd.ms-tnef"}, nil},
		{"data-and-bin-differ", buildTNEF(tnefAtt{title: "a.pdf", data: pdf, obj: pe, objType: 0x0102}),
			Options{}, []string{"t:a.pdf:application/pdf", "t:a.pdf:application/vnd.microsoft.portable-executable:x"}, nil},
		{"declared-not-tnef", []byte("just text"), Options{Name: "WINMAIL.DAT"}, nil, []string{DefectTNEFCorrupt}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.SpillDir = t.TempDir()
			r := inspectBytes(t, c.opts, c.body)
			if got := embShape(r.Embedded); !reflect.DeepEqual(got, nonNil(c.want)) {
				t.Errorf("embedded\n got %q\nwant %q", got, c.want)
			}
			if !reflect.DeepEqual(nonNil(r.Defects), nonNil(c.defects)) {
				t.Errorf("defects %q, want %q", r.Defects, c.defects)
			}
			if r2 := inspectChunks(c.opts, c.body, 3); !reflect.DeepEqual(r, r2) {
				t.Errorf("chunked result differs")
			}
		})
	}
	// The embedded results hash the attachment bytes, and nested archives are listed.
	r := inspectBytes(t, Options{SpillDir: t.TempDir()}, buildTNEF(tnefAtt{title: "run.exe", data: pe}, tnefAtt{title: "a.zip", data: buildZip(t, zent{name: "b.exe", data: pe})}))
	if r.Embedded[0].Result.SHA256 != sha(pe) || r.Embedded[0].Result.Size != int64(len(pe)) {
		t.Errorf("TNEF attachment hash/size wrong: %+v", r.Embedded[0].Result)
	}
	if got := shapes(r.Embedded[1].Result.Archive); !reflect.DeepEqual(got, []string{"b.exe|1|x"}) {
		t.Errorf("zip in TNEF: %q", got)
	}
	// An embedded message's own attachments are listed under it.
	r = inspectBytes(t, Options{SpillDir: t.TempDir()}, buildTNEF(tnefAtt{title: "m", data: []byte("placeholder"), obj: inner, objType: 0x000D}))
	if len(r.Embedded) != 2 || !reflect.DeepEqual(embShape(r.Embedded[1].Result.Embedded), []string{"t:deep.exe:application/vnd.microsoft.portable-executable:x"}) {
		t.Errorf("embedded message: %+v", r.Embedded)
	}
	// TNEF in TNEF is listed one level down.
	r = inspectBytes(t, Options{SpillDir: t.TempDir()}, buildTNEF(tnefAtt{title: "winmail.dat", data: inner}))
	if got := embShape(r.Embedded[0].Result.Embedded); !reflect.DeepEqual(got, []string{"t:deep.exe:application/vnd.microsoft.portable-executable:x"}) {
		t.Errorf("nested TNEF: %q", got)
	}
}

func TestUUEncode(t *testing.T) {
	pe := minimalPE()
	text := []byte("Hello,\r\nsee attached.\r\n\r\n")
	body := append(append(append([]byte{}, text...), uuencode("tool.exe", pe)...), "\r\nbye\r\n"...)
	cases := []struct {
		name    string
		body    []byte
		want    []string
		defects []string
	}{
		{"one", body, []string{"u:tool.exe:application/vnd.microsoft.portable-executable:x"}, nil},
		{"two-lf", bytes.ReplaceAll(append(uuencode("a.txt", []byte("hello there")), uuencode("b.pdf", []byte("%PDF-1.4\n"))...), []byte("\r\n"), []byte("\n")),
			[]string{"u:a.txt:text/plain", "u:b.pdf:application/pdf"}, nil},
		{"unterminated", bytes.TrimSuffix(uuencode("x.exe", pe), []byte("`\r\nend\r\n")),
			[]string{"u:x.exe:application/vnd.microsoft.portable-executable:x"}, []string{DefectUUEncodeUnterminated}},
		{"not-begin", []byte("begin here\r\nbegin 6 x\r\nbeginning 644 y\r\n"), nil, nil},
		{"corrupt-line", []byte("begin 644 c.bin\r\n#\x01\x02\x03\x04\r\nend\r\n"), []string{"u:c.bin:text/plain"}, []string{DefectUUEncodeCorrupt}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Text: true}
			r := inspectBytes(t, opts, c.body)
			if got := embShape(r.Embedded); !reflect.DeepEqual(got, nonNil(c.want)) {
				t.Errorf("embedded\n got %q\nwant %q", got, c.want)
			}
			if !reflect.DeepEqual(nonNil(r.Defects), nonNil(c.defects)) {
				t.Errorf("defects %q, want %q", r.Defects, c.defects)
			}
			if r2 := inspectChunks(opts, c.body, 1); !reflect.DeepEqual(r, r2) {
				t.Errorf("1-byte result differs")
			}
		})
	}
	r := inspectBytes(t, Options{Text: true}, body)
	if e := r.Embedded[0].Result; e.SHA256 != sha(pe) || e.Size != int64(len(pe)) {
		t.Errorf("decoded uuencode block differs from the original: size %d", e.Size)
	}
	if r := inspectBytes(t, Options{}, body); len(r.Embedded) != 0 {
		t.Errorf("uuencode scanned without Options.Text")
	}
}

func TestParseUUBegin(t *testing.T) {
	for _, c := range []struct {
		line, name string
		ok         bool
	}{
		{"begin 644 a.exe", "a.exe", true},
		{"begin 0755 my file.txt ", "my file.txt", true},
		{"begin  600 x", "x", true},
		{"begin 64 x", "", false},
		{"begin 644", "", false},
		{"begin 644 ", "", false},
		{"begin 689 x", "", false},
		{"Begin 644 x", "", false},
	} {
		name, ok := parseUUBegin([]byte(c.line))
		if name != c.name || ok != c.ok {
			t.Errorf("parseUUBegin(%q) = %q, %v", c.line, name, ok)
		}
	}
}

func TestUUDecodeLine(t *testing.T) {
	for _, c := range []struct {
		line, want string
		ok         bool
	}{
		{"#0V%T", "Cat", true},
		{"`", "", true},
		{"", "", true},
		{string(bytes.Split(uuencode("x", []byte("Cat ca")), []byte("\r\n"))[1]), "Cat ca", true},
		{"#0V", "C`\x00", true}, // trailing characters stripped in transit: zero
		{"#0V%T" + strings.Repeat("A", 20), "Cat", false},
		{"#\x01\x02\x03\x04", "\x86(\xe4", false},
	} {
		got, ok := uuDecodeLine(nil, []byte(c.line))
		if string(got) != c.want || ok != c.ok {
			t.Errorf("uuDecodeLine(%q) = %q, %v; want %q, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

func TestMAPIProps(t *testing.T) {
	props := func(b []byte) (string, []section) { return mapiProps(bytes.NewReader(b), 0, int64(len(b))) }
	if long, objs := props(buildMAPIProps("Résumé.docx", nil, 0)); long != "Résumé.docx" || len(objs) != 0 {
		t.Errorf("got %q %v", long, objs)
	}
	b := buildMAPIProps("m.msg", []byte("inner"), 0x000D)
	if long, objs := props(b); long != "m.msg" || len(objs) != 1 || string(b[objs[0].off:objs[0].off+objs[0].n]) != "inner" {
		t.Errorf("object: %q %v", long, objs)
	}
	for _, b := range [][]byte{nil, {1, 0, 0, 0}, {1, 0, 0, 0, 0x1F, 0, 0x07, 0x37, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F}} {
		if long, objs := props(b); long != "" || len(objs) != 0 {
			t.Errorf("malformed: %q %v", long, objs)
		}
	}
}
