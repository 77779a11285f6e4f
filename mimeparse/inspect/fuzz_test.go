package inspect

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"mailgate/internal/hostile"
)

// seedBodies are every fixture the tests build plus the files in testdata.
func seedBodies(f *testing.F) [][]byte {
	pe := minimalPE()
	seeds := [][]byte{
		nil, []byte("hello"), pe, minimalELF(),
		buildZip(f, zent{name: "a.exe", data: pe}, zent{name: "word/vbaProject.bin", data: []byte("x")}),
		buildZip(f, zent{name: "e.bin", data: pe, flags: 1}),
		buildZip(f, zent{name: "n.zip", data: buildZip(f, zent{name: "b.exe", data: pe})}),
		buildTar(f, map[string][]byte{"a": pe}, "a"),
		gz(f, "x", buildTar(f, map[string][]byte{"a": pe}, "a")),
		buildCFB([]string{"WordDocument", "Macros", "VBA"}, nil),
		buildCFB([]string{"x"}, clsidMSI),
		buildCFBStreams([]cfbStream{{name: "Workbook", data: xlsWorkbook(1, true, 5000)}}, nil),
		buildTNEF(tnefAtt{title: "a.exe", long: "long.exe", data: pe}),
		buildTNEF(tnefAtt{title: "m", data: []byte("x"), obj: buildTNEF(tnefAtt{title: "b.exe", data: pe}), objType: 0x000D}),
		append([]byte("text\r\n"), uuencode("u.exe", pe)...),
		buildRAR5(f, "r.exe", pe),
		buildCab([]string{"a.exe"}, []uint32{1}),
		buildCabData(f, 1, []string{"a.txt", "b.zip"}, [][]byte{pe, buildZip(f, zent{name: "c.exe", data: pe})}),
		buildCabData(f, 0, []string{"a.txt"}, [][]byte{pe}),
		buildISO([]isoFile{{name: "A.EXE", joliet: "a.exe", data: pe}}),
		zstdBytes(f, pe),
		xzBytes(f, buildTar(f, map[string][]byte{"a": pe}, "a")),
		hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(1 << 16)}}, hostile.LZMA2Raw(pe), uint64(len(pe))),
		hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.LZMA2, Props: []byte{hostile.LZMA2Props(3 << 30)}}, hostile.LZMA2Raw(pe), uint64(len(pe))),
		hostile.SevenZip("a.exe", hostile.Coder{ID: hostile.PPMd, Props: hostile.DictProps(6, 1<<20)}, make([]byte, 64), uint64(len(pe))),
		hostile.SevenZipEncodedHeader(hostile.Coder{ID: hostile.LZMA, Props: hostile.DictProps(0x5d, 1<<16)}, make([]byte, 64), 100),
		hostile.Xz(pe, 3<<30),
		hostile.ZstdWindow(pe, 31),
		hostile.RAR5("a.exe", make([]byte, 64), 3, 15, 4<<30),
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	files2, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "*", "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil && filepath.Ext(p) != ".md" {
			seeds = append(seeds, b)
		}
	}
	_ = files2 // testdata/fuzz/FuzzX/* are run by go test itself
	return seeds
}

// FuzzInspect: any body, any chunking. Properties: no panic; Size and
// SHA256 are those of the input; the Result does not depend on how the body
// was cut into writes; memory stays bounded.
func FuzzInspect(f *testing.F) {
	for _, b := range seedBodies(f) {
		f.Add(b, false, uint8(0))
		f.Add(b, true, uint8(3))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte, text bool, chunk uint8) {
		opts := Options{Text: text, Spill: 1 << 20, SpillDir: dir, ArchiveEntries: 50}
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		r := inspectBytes(t, opts, body)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if r.Size != int64(len(body)) || r.SHA256 != sha(body) {
			t.Fatalf("size/sha256 wrong")
		}
		if len(r.Archive) > 50 {
			t.Fatalf("%d entries listed, limit 50", len(r.Archive))
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 256<<20 {
			t.Fatalf("allocated %d bytes for a %d-byte body", d, len(body))
		}
		if r2 := inspectChunks(opts, body, int(chunk)+1); !reflect.DeepEqual(r, r2) {
			t.Fatalf("chunk size %d changes the result:\n%+v\n%+v", int(chunk)+1, r, r2)
		}
	})
}

// FuzzISO: the ISO 9660 reader, as the attachment itself (files become
// leaves) and inside an archive (files become entries), without the panic
// recovery of walker.container. Properties: no panic; leaves and entries
// within their limits; what is read stays within the budget given.
func FuzzISO(f *testing.F) {
	pe := minimalPE()
	f.Add(buildISO([]isoFile{{name: "A.EXE", joliet: "a.exe", data: pe}}), false)
	f.Add(buildISO([]isoFile{{name: "README.TXT", data: []byte("hello")}, {name: "B.ZIP", data: buildZip(f, zent{name: "c.exe", data: pe})}}), true)
	f.Fuzz(func(t *testing.T, b []byte, inArchive bool) {
		const budget = 1 << 20
		var res Result
		o := Options{Budget: NewBudget(budget), Spill: 4 << 20, ArchiveEntries: 50}.withDefaults()
		w := newWalker(o, &res, 0)
		depth := 0
		if inArchive {
			depth = 1
		}
		w.iso(bytes.NewReader(b), depth)
		if len(res.Embedded) > maxEmbedded || len(res.Archive) > 50 || o.Budget.Left() < 0 {
			t.Fatalf("%d leaves, %d entries, budget left %d", len(res.Embedded), len(res.Archive), o.Budget.Left())
		}
	})
}

// FuzzCFB: the OLE2 directory reader never panics and stays bounded.
func FuzzCFB(f *testing.F) {
	f.Add(buildCFB([]string{"WordDocument", "Macros", "VBA"}, nil))
	f.Add(buildCFB([]string{"x", "y", "z", "w", "v"}, clsidMSI))
	f.Add(append(append([]byte{}, magicOLE...), make([]byte, 1000)...))
	f.Add(buildCFBStreams([]cfbStream{{name: "Workbook", data: xlsWorkbook(1, true, 5000)}}, nil))
	f.Add(buildCFBStreams([]cfbStream{{name: "a", data: make([]byte, 100)}, {name: "Workbook", data: xlsWorkbook(1, false, 0)}}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		facts, err := readCFB(bytes.NewReader(b))
		if err == nil && len(facts.names) > cfbMaxDirEntries+16 {
			t.Fatalf("%d names", len(facts.names))
		}
	})
}

// FuzzUUDecodeLine: decoding never panics, never yields more than the
// length character allows, and decodes what uuencode encoded.
func FuzzUUDecodeLine(f *testing.F) {
	f.Add([]byte("#0V%T"), []byte("Cat"))
	f.Add([]byte("`"), []byte{})
	f.Add([]byte("M"+string(bytes.Repeat([]byte("A"), 60))), []byte("x"))
	f.Fuzz(func(t *testing.T, line, data []byte) {
		out, _ := uuDecodeLine(nil, line)
		if len(line) > 0 && len(out) > int((line[0]-32)&63)+2 {
			t.Fatalf("%d bytes from a line of length %d", len(out), (line[0]-32)&63)
		}
		data = data[:min(len(data), 45)]
		enc := bytes.Split(uuencode("x", data), []byte("\r\n"))[1]
		if len(data) == 0 {
			return
		}
		got, ok := uuDecodeLine(nil, enc)
		if !ok || !bytes.Equal(got, data) {
			t.Fatalf("round trip %q -> %q -> %q (%v)", data, enc, got, ok)
		}
	})
}

// FuzzMAPI: the MAPI property walker never panics and every data section
// it returns lies inside the input.
func FuzzMAPI(f *testing.F) {
	f.Add(buildMAPIProps("a.exe", nil, 0))
	f.Add(buildMAPIProps("a.exe", []byte("abc"), 0x000D))
	f.Add([]byte{1, 0, 0, 0, 0x1F, 0, 0x07, 0x37, 1, 0, 0, 0, 4, 0, 0, 0, 'a', 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, objs := mapiProps(bytes.NewReader(b), 0, int64(len(b)))
		for _, o := range objs {
			if o.off < 0 || o.n <= 0 || o.off+o.n > int64(len(b)) {
				t.Fatalf("section %v outside %d bytes", o, len(b))
			}
		}
	})
}

// FuzzZipCentral: the central directory reader never panics or reads
// more records than asked.
func FuzzZipCentral(f *testing.F) {
	f.Add(buildZip(f, zent{name: "a", data: []byte("b")}))
	f.Add(patchLocalName(buildZip(f, zent{name: "invoice.pdf", data: []byte("b")}), "invoice.pdf", "invoice.exe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := zipCentral(bytes.NewReader(b), 10)
		if len(d.entries) > 10 {
			t.Fatalf("%d records", len(d.entries))
		}
		for _, e := range d.entries {
			zipLocalName(bytes.NewReader(b), e.offset)
		}
		if !d.ok {
			return
		}
		// archive/zip reads exactly the records of the view.
		v := d.view(sizedReaderAt{bytes.NewReader(b), int64(len(b))}, len(d.entries))
		zr, err := zip.NewReader(v, v.Size())
		if err == nil && len(zr.File) != len(d.entries) {
			t.Fatalf("view of %d records: archive/zip read %d", len(d.entries), len(zr.File))
		}
	})
}
