package inspect

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// ent is the expected shape of an Entry: Name|Depth|flags where flags has
// x (Executable) and e (Encrypted).
func entShape(e Entry) string {
	f := ""
	if e.Executable {
		f += "x"
	}
	if e.Encrypted {
		f += "e"
	}
	return e.Name + "|" + string(rune('0'+e.Depth)) + "|" + f
}

func shapes(es []Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, entShape(e))
	}
	return out
}

type archiveCase struct {
	name     string
	body     []byte
	opts     Options
	entries  []string
	defects  []string
	macros   bool
	enc      bool
	exe      bool
	detected string // "" = don't check
}

func runArchiveCases(t *testing.T, cases []archiveCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.SpillDir = t.TempDir()
			r := inspectBytes(t, c.opts, c.body)
			if got := shapes(r.Archive); !reflect.DeepEqual(got, nonNil(c.entries)) {
				t.Errorf("entries\n got %q\nwant %q", got, c.entries)
			}
			if !reflect.DeepEqual(nonNil(r.Defects), nonNil(c.defects)) {
				t.Errorf("defects = %q, want %q", r.Defects, c.defects)
			}
			if r.Macros != c.macros || r.Encrypted != c.enc || r.Executable != c.exe {
				t.Errorf("macros/encrypted/executable = %v/%v/%v, want %v/%v/%v", r.Macros, r.Encrypted, r.Executable, c.macros, c.enc, c.exe)
			}
			if c.detected != "" && r.DetectedType != c.detected {
				t.Errorf("DetectedType = %q, want %q", r.DetectedType, c.detected)
			}
			if r.SHA256 != sha(c.body) || r.Size != int64(len(c.body)) {
				t.Errorf("hash/size of the body wrong")
			}
			// chunking does not change anything
			if r2 := inspectChunks(c.opts, c.body, 1); !reflect.DeepEqual(r, r2) {
				t.Errorf("1-byte writes differ:\n got %+v\nwant %+v", r2, r)
			}
			if left, _ := filepath.Glob(filepath.Join(c.opts.SpillDir, "*")); len(left) != 0 {
				t.Errorf("spill files left behind: %v", left)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// patchLocalName replaces the first occurrence of old in the zip's local
// headers (the first copy of the name in the file) with new (same length).
func patchLocalName(z []byte, old, new string) []byte {
	z = append([]byte(nil), z...)
	i := bytes.Index(z, []byte(old))
	copy(z[i:], new)
	return z
}

func TestZip(t *testing.T) {
	pe := minimalPE()
	inner := buildZip(t, zent{name: "payload.exe", data: pe})
	inner2 := buildZip(t, zent{name: "in2.zip", data: inner, store: true})
	zeros := make([]byte, 300<<10)
	bigInner := buildZip(t, zent{name: "zeros.bin", data: zeros, store: true})
	many := []zent{}
	for _, n := range []string{"a.txt", "b.txt", "c.txt", "d.txt", "e.txt"} {
		many = append(many, zent{name: n, data: []byte("x")})
	}
	runArchiveCases(t, []archiveCase{
		{name: "plain", body: buildZip(t, zent{name: "doc/readme.txt", data: []byte("hello")}, zent{name: "run.exe", data: pe}),
			entries: []string{"doc/readme.txt|1|", "run.exe|1|x"}, detected: "application/zip"},
		{name: "encrypted-flag", body: buildZip(t, zent{name: "secret.exe", data: pe, flags: 1}),
			entries: []string{"secret.exe|1|e"}, enc: true},
		{name: "aes", body: buildZip(t, zent{name: "a.bin", data: []byte("0123456789"), aes: true}),
			entries: []string{"a.bin|1|e"}, enc: true},
		{name: "name-mismatch", body: patchLocalName(buildZip(t, zent{name: "invoice.pdf", data: pe}), "invoice.pdf", "invoice.exe"),
			entries: []string{"invoice.pdf|1|x", "invoice.exe|1|x"}, defects: []string{DefectZipNameMismatch}},
		{name: "nested", body: buildZip(t, zent{name: "inner.zip", data: inner}),
			entries: []string{"inner.zip|1|", "payload.exe|2|x"}},
		{name: "nested-3", body: buildZip(t, zent{name: "in1.zip", data: inner2}),
			entries: []string{"in1.zip|1|", "in2.zip|2|", "payload.exe|3|x"}},
		{name: "depth-limit", body: buildZip(t, zent{name: "in1.zip", data: inner2}), opts: Options{ArchiveDepth: 2},
			entries: []string{"in1.zip|1|", "in2.zip|2|"}, defects: []string{DefectLimitArchiveDepth}},
		{name: "entries-limit", body: buildZip(t, many...), opts: Options{ArchiveEntries: 3},
			entries: []string{"a.txt|1|", "b.txt|1|", "c.txt|1|"}, defects: []string{DefectLimitArchiveEntries}},
		{name: "bomb-budget", body: buildZip(t, zent{name: "big.zip", data: bigInner}, zent{name: "after.exe", data: pe}), opts: Options{Spill: 64 << 10},
			entries: []string{"big.zip|1|", "after.exe|1|"}, defects: []string{DefectLimitArchiveBytes}},
		{name: "spill-limit", body: buildZip(t, zent{name: "r.bin", data: randBytes(200 << 10), store: true}), opts: Options{Spill: 100 << 10},
			defects: []string{DefectLimitInspectSpill}},
		{name: "prefixed", body: append(randBytes(5000), buildZip(t, zent{name: "x.exe", data: pe})...),
			defects: []string{DefectZipPrefix}, detected: "application/octet-stream"},
		{name: "concatenated", body: append(buildZip(t, zent{name: "first.exe", data: pe}), buildZip(t, zent{name: "second.txt", data: []byte("hi")})...),
			entries: []string{"second.txt|1|", "first.exe|1|x"}, defects: []string{DefectZipPrefix, DefectZipHiddenEntry}},
		{name: "concatenated-stored", body: append(buildZip(t, zent{name: "first.exe", data: pe, store: true}), buildZip(t, zent{name: "second.txt", data: []byte("hi"), store: true})...),
			entries: []string{"second.txt|1|", "first.exe|1|x"}, defects: []string{DefectZipPrefix, DefectZipHiddenEntry}},
		{name: "corrupt", body: append([]byte("PK\x03\x04"), make([]byte, 4000)...),
			defects: []string{DefectArchiveCorrupt}},
		{name: "ooxml-vba", body: buildZip(t, zent{name: "[Content_Types].xml", data: []byte("<Types/>")}, zent{name: "word/vbaProject.bin", data: []byte("x")}),
			entries: []string{"[Content_Types].xml|1|", "word/vbaProject.bin|1|"}, macros: true},
		{name: "ooxml-vba-case", body: buildZip(t, zent{name: "XL\\VBAPROJECT.BIN", data: []byte("x")}),
			entries: []string{"XL\\VBAPROJECT.BIN|1|"}, macros: true},
		{name: "ooxml-content-type", body: buildZip(t, zent{name: "[Content_Types].xml", data: []byte(`<Override ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/>`)}),
			entries: []string{"[Content_Types].xml|1|"}, macros: true},
		{name: "ooxml-clean", body: buildZip(t, zent{name: "[Content_Types].xml", data: []byte(`<Override ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>`)}, zent{name: "word/document.xml", data: []byte("<w/>")}),
			entries: []string{"[Content_Types].xml|1|", "word/document.xml|1|"}},
		{name: "doc-with-macros-in-zip", body: buildZip(t, zent{name: "a.doc", data: buildCFB([]string{"WordDocument", "Macros", "VBA"}, nil)}),
			entries: []string{"a.doc|1|"}, macros: true},
		{name: "msi-in-zip", body: buildZip(t, zent{name: "setup.msi", data: buildCFB([]string{"x"}, clsidMSI)}),
			entries: []string{"setup.msi|1|x"}},
	})
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func TestGzipTar(t *testing.T) {
	pe := minimalPE()
	tarball := buildTar(t, map[string][]byte{"bin/tool": minimalELF(), "notes.txt": []byte("hi"), "x.zip": buildZip(t, zent{name: "y.exe", data: pe})}, "notes.txt", "bin/tool", "x.zip")
	runArchiveCases(t, []archiveCase{
		{name: "tar", body: tarball, entries: []string{"notes.txt|1|", "bin/tool|1|x", "x.zip|1|", "y.exe|2|x"}},
		{name: "tar.gz", body: gz(t, "", tarball), entries: []string{"notes.txt|1|", "bin/tool|1|x", "x.zip|1|", "y.exe|2|x"}},
		{name: "gz-exe", body: gz(t, "setup.exe", pe), entries: []string{"setup.exe|1|x"}},
		{name: "gz-name-from-option", body: gz(t, "", []byte("text")), opts: Options{Name: "notes.txt.gz"}, entries: []string{"notes.txt|1|"}},
		{name: "gz-corrupt", body: append(gz(t, "a", randBytes(6000))[:300], make([]byte, 3000)...),
			entries: []string{"a|1|"}, defects: []string{DefectArchiveCorrupt}},
	})
	// gzip entry size is the decompressed size
	r := inspectBytes(t, Options{SpillDir: t.TempDir()}, gz(t, "z", make([]byte, 100000)))
	if len(r.Archive) != 1 || r.Archive[0].Size != 100000 {
		t.Errorf("gzip entry %+v", r.Archive)
	}
}

func TestSevenZip(t *testing.T) {
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	r := inspectBytes(t, Options{SpillDir: t.TempDir()}, read("t0.7z"))
	if len(r.Archive) == 0 || len(r.Defects) != 0 || r.Encrypted {
		t.Errorf("t0.7z: %+v", r)
	}
	r = inspectBytes(t, Options{SpillDir: t.TempDir()}, read("t2.7z"))
	if !r.Encrypted || !hasDefect(r, DefectArchiveEncryptedHeaders) || len(r.Archive) != 0 {
		t.Errorf("t2.7z (encrypted headers): %+v", r)
	}
	r = inspectBytes(t, Options{SpillDir: t.TempDir()}, read("t4.7z"))
	if !r.Encrypted || len(r.Archive) == 0 || !r.Archive[0].Encrypted {
		t.Errorf("t4.7z (encrypted files): %+v", r)
	}
	for _, e := range r.Archive {
		if strings.Contains(e.Name, "/") && e.Depth != 1 {
			t.Errorf("depth %+v", e)
		}
	}
}

func TestOLE(t *testing.T) {
	runArchiveCases(t, []archiveCase{
		{name: "doc-clean", body: buildCFB([]string{"WordDocument", "1Table", "\x05SummaryInformation"}, nil), detected: "application/msword"},
		{name: "doc-vba", body: buildCFB([]string{"WordDocument", "Macros", "VBA", "dir"}, nil), macros: true},
		{name: "xls-vba", body: buildCFB([]string{"Workbook", "_VBA_PROJECT_CUR", "VBA"}, nil), macros: true},
		{name: "vba-lower", body: buildCFB([]string{"Workbook", "_vba_project"}, nil), macros: true},
		{name: "encrypted-ooxml", body: buildCFB([]string{"EncryptionInfo", "EncryptedPackage"}, nil), enc: true},
		{name: "msi", body: buildCFB([]string{"\u4840\u3f3f"}, clsidMSI), exe: true},
		{name: "corrupt", body: append(append([]byte{}, magicOLE...), make([]byte, 600)...), defects: []string{DefectOLECorrupt}},
		{name: "xls-clean", body: buildCFBStreams([]cfbStream{{name: "Workbook", data: xlsWorkbook(0, false, 5000)}}, nil)},
		{name: "xls-xlm-macrosheet", body: buildCFBStreams([]cfbStream{{name: "Workbook", data: xlsWorkbook(1, false, 5000)}}, nil), macros: true},
		{name: "xls-xlm-ministream", body: buildCFBStreams([]cfbStream{{name: "\x05SummaryInformation", data: make([]byte, 200)}, {name: "Workbook", data: xlsWorkbook(1, false, 0)}}, nil), macros: true},
		{name: "xls-encrypted", body: buildCFBStreams([]cfbStream{{name: "Workbook", data: xlsWorkbook(0, true, 5000)}}, nil), enc: true},
		{name: "doc-encrypted", body: buildCFBStreams([]cfbStream{{name: "WordDocument", data: append(make([]byte, 10), 0x00, 0x01)}}, nil), enc: true},
		{name: "ppt-vba", body: buildCFBStreams([]cfbStream{{name: "PowerPoint Document", data: append(append(make([]byte, 5107), pptVBAInfo...), make([]byte, 40)...)}}, nil), macros: true},
		{name: "ppt-vba-mini", body: buildCFBStreams([]cfbStream{{name: "PowerPoint Document", data: append(make([]byte, 30), pptVBAInfo...)}}, nil), macros: true},
		{name: "ppt-clean", body: buildCFBStreams([]cfbStream{{name: "PowerPoint Document", data: make([]byte, 6000)}}, nil)},
		{name: "doc-clean-fib", body: buildCFBStreams([]cfbStream{{name: "WordDocument", data: make([]byte, 5000)}, {name: "1Table", data: make([]byte, 100)}}, nil)},
	})
}

func TestExecutableMagic(t *testing.T) {
	for _, c := range []struct {
		b   []byte
		exe bool
	}{
		{[]byte("MZ"), true}, {[]byte("ZM\x90\x00"), true}, {[]byte("\x7fELF"), true},
		{[]byte{0xFE, 0xED, 0xFA, 0xCE}, true}, {[]byte{0xCE, 0xFA, 0xED, 0xFE}, true},
		{[]byte{0xFE, 0xED, 0xFA, 0xCF}, true}, {[]byte{0xCA, 0xFE, 0xBA, 0xBF, 0, 0, 0, 1}, true},
		{[]byte{0xCA, 0xFE, 0xBA, 0xBE, 0, 0, 0, 0x34}, false}, {[]byte("M"), false},
		{[]byte("%PDF"), false}, {nil, false},
	} {
		if got := isExecutable(c.b); got != c.exe {
			t.Errorf("isExecutable(% x) = %v", c.b, got)
		}
	}
}

func TestRar(t *testing.T) {
	pe := minimalPE()
	rar := buildRAR5(t, "dir/r.exe", pe)
	runArchiveCases(t, []archiveCase{
		{name: "rar5-store", body: rar, entries: []string{"dir/r.exe|1|x"}, detected: "application/vnd.rar"},
		{name: "rar-in-zip", body: buildZip(t, zent{name: "a.rar", data: rar}), entries: []string{"a.rar|1|", "dir/r.exe|2|x"}},
		{name: "rar5-encrypted-headers", body: buildRAR5EncryptedHeaders(), enc: true, defects: []string{DefectArchiveEncryptedHeaders}},
		{name: "rar-corrupt", body: append(rar[:30:30], make([]byte, 100)...), defects: []string{DefectArchiveCorrupt}},
	})
}

func TestCompressedAndCab(t *testing.T) {
	pe := minimalPE()
	runArchiveCases(t, []archiveCase{
		{name: "cab", body: buildCab([]string{"readme.txt", "setup.exe"}, []uint32{10, 4096}), entries: []string{"readme.txt|1|", "setup.exe|1|"}, detected: "application/vnd.ms-cab-compressed"},
		{name: "cab-truncated", body: buildCab([]string{"readme.txt", "setup.exe"}, []uint32{10, 4096})[:60], defects: []string{DefectArchiveCorrupt}},
		{name: "bzip2-corrupt", body: append([]byte("BZh91AY&SY"), make([]byte, 100)...), opts: Options{Name: "a.exe.bz2"}, entries: []string{"a.exe|1|"}, defects: []string{DefectArchiveCorrupt}},
		{name: "xz-corrupt", body: append(append([]byte{}, magicXz...), make([]byte, 100)...), defects: []string{DefectArchiveCorrupt}},
		{name: "tar.xz", body: xzBytes(t, buildTar(t, map[string][]byte{"bin/run": minimalELF()}, "bin/run")), entries: []string{"bin/run|1|x"}},
		{name: "zstd-exe", body: zstdBytes(t, pe), opts: Options{Name: "tool.exe.zst"}, entries: []string{"tool.exe|1|x"}},
	})
}

func TestISO(t *testing.T) {
	pe := minimalPE()
	iso := buildISO([]isoFile{{name: "README.TXT", data: []byte("hello")}, {name: "INVOICE.PDF", joliet: "Invoice.exe", data: pe}})
	runArchiveCases(t, []archiveCase{
		// the image's own files are leaves, not entries: TestISOLeaves
		{name: "primary-and-joliet", body: iso},
		{name: "by-name", body: append([]byte("not zero"), iso[8:]...), opts: Options{Name: "a.iso"}},
		{name: "zeros-not-iso", body: make([]byte, 40000)},
		{name: "iso-in-zip", body: buildZip(t, zent{name: "disk.img", data: iso}),
			entries: []string{"disk.img|1|", "README.TXT|2|", "INVOICE.PDF|2|x", "Invoice.exe|2|x"}},
	})
}

// An ISO image that is the attachment itself carries its files as leaves
// (Kind 'e', "2.e1" in mimeparse), like a FAT image: a program inside is an
// attachment with Executable set, not only an archive entry.
func TestISOLeaves(t *testing.T) {
	pe := minimalPE()
	exe := "application/vnd.microsoft.portable-executable"
	iso := buildISO([]isoFile{{name: "README.TXT", data: []byte("hello")}, {name: "INVOICE.PDF", joliet: "Invoice.exe", data: pe}})
	cases := []struct {
		name    string
		body    []byte
		opts    Options
		want    []string
		defects []string
	}{
		{"primary-and-joliet", iso, Options{},
			[]string{"e:README.TXT:text/plain", "e:INVOICE.PDF:" + exe + ":x", "e:Invoice.exe:" + exe + ":x"}, nil},
		{"by-name", append([]byte("not zero"), iso[8:]...), Options{Name: "a.iso"},
			[]string{"e:README.TXT:text/plain", "e:INVOICE.PDF:" + exe + ":x", "e:Invoice.exe:" + exe + ":x"}, nil},
		{"zip-inside", buildISO([]isoFile{{name: "A.ZIP", data: buildZip(t, zent{name: "b.exe", data: pe})}}), Options{},
			[]string{"e:A.ZIP:application/zip"}, nil},
		// the files' bytes count against the message's budget: reading
		// stops where it runs out (8 bytes: "hello" and 3 bytes of the PE)
		{"budget", iso, Options{Budget: NewBudget(8)},
			[]string{"e:README.TXT:text/plain", "e:INVOICE.PDF:" + exe + ":x"}, []string{DefectLimitDecompressedBytes}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.opts.SpillDir = t.TempDir()
			r := inspectBytes(t, c.opts, c.body)
			if got := embShape(r.Embedded); !reflect.DeepEqual(got, nonNil(c.want)) {
				t.Errorf("embedded\n got %q\nwant %q", got, c.want)
			}
			if len(r.Archive) != 0 {
				t.Errorf("archive entries %q, want none", shapes(r.Archive))
			}
			if !reflect.DeepEqual(nonNil(r.Defects), nonNil(c.defects)) {
				t.Errorf("defects %q, want %q", r.Defects, c.defects)
			}
		})
	}
	// the zip inside is inspected as a leaf of its own
	r := inspectBytes(t, Options{SpillDir: t.TempDir()}, buildISO([]isoFile{{name: "A.ZIP", data: buildZip(t, zent{name: "b.exe", data: pe})}}))
	if len(r.Embedded) != 1 || shapes(r.Embedded[0].Result.Archive)[0] != "b.exe|1|x" {
		t.Errorf("zip leaf: %+v", r.Embedded)
	}
}
