package inspect

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fixtureAttachment returns the decoded base64 attachment named name of a
// testdata/carriers message (internal/fixtures/carriers.go writes them).
func fixtureAttachment(t testing.TB, file, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "testdata", "carriers", file))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)filename="` + regexp.QuoteMeta(name) + `"\r\n\r\n(.*?)\r\n--`)
	m := re.FindSubmatch(raw)
	if m == nil {
		t.Fatalf("%s: no attachment %s", file, name)
	}
	b, err := base64.StdEncoding.DecodeString(string(bytes.ReplaceAll(m[1], []byte("\r\n"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inspectOdd feeds b in odd chunks: the result must not depend on them.
func inspectOdd(b []byte, o Options) Result { return inspectChunks(o, b, 777) }

// TestCarriers: each carrier reader on the generated techniques and
// look-alikes: the active content and the carried files it reports.
func TestCarriers(t *testing.T) {
	for _, c := range []struct {
		file, name, declared string
		active               []string
		carried              string // "name:exe" per carried file, joined by ","
	}{
		{"attack-html-smuggling.eml", "invoice.html", "text/html", []string{"script"}, ":exe"},
		{"attack-svg-script.eml", "voicemail.svg", "image/svg+xml", []string{"script"}, ""},
		{"attack-onenote-exe.eml", "invoice.one", "", []string{"onenote-embedded-file"}, ":exe"},
		{"attack-pdf-embedded-exe.eml", "invoice.pdf", "", []string{"pdf-javascript", "pdf-openaction"}, "invoice.exe:exe"},
		{"attack-pdf-launch.eml", "invoice.pdf", "", []string{"pdf-launch", "pdf-openaction"}, ""},
		{"attack-docx-remote-template.eml", "report.docx", "", []string{"ooxml-external-template", "remote-share"}[:1], ""},
		{"attack-docx-ole-package.eml", "report.docx", "", []string{"ole-package"}, "invoice.js:"},
		{"attack-rtf-objdata.eml", "report.doc", "", []string{"ole-package", "rtf-object"}, "setup.exe:exe"},
		{"attack-msc.eml", "report.msc", "", []string{"msc-script"}, ""},
		{"attack-vhd-exe.eml", "backup.vhd", "", nil, "SETUP.EXE:exe"},
		{"attack-img-exe.eml", "backup.bin", "", nil, "SETUP.EXE:exe"},
		{"attack-iso-exe.eml", "photos.iso", "", nil, "README.TXT:,SETUP.EXE:exe"},
		{"benign-html-newsletter.eml", "newsletter.html", "text/html", nil, ""},
		{"benign-svg-logo.eml", "logo.svg", "image/svg+xml", nil, ""},
		{"benign-pdf-link.eml", "invoice.pdf", "", []string{"pdf-openaction"}, ""},
		{"benign-pdf-facturx.eml", "invoice.pdf", "", nil, "factur-x.xml:"},
		{"benign-docx-hyperlink.eml", "report.docx", "", nil, ""},
	} {
		t.Run(c.file, func(t *testing.T) {
			r := inspectOdd(fixtureAttachment(t, c.file, c.name), Options{Name: c.name, Declared: c.declared})
			if !slices.Equal(r.Active, c.active) {
				t.Errorf("Active %q, want %q", r.Active, c.active)
			}
			var got []string
			for _, e := range r.Embedded {
				x := ""
				if e.Result.Executable {
					x = "exe"
				}
				got = append(got, e.Name+":"+x)
			}
			if g := strings.Join(got, ","); g != c.carried || r.Defects != nil {
				t.Errorf("carried %q, want %q (defects %v)", g, c.carried, r.Defects)
			}
		})
	}
}

// TestCarrierInArchive: a carrier inside a zip reports on its entry, and
// what it carries is listed one level deeper.
func TestCarrierInArchive(t *testing.T) {
	r := inspectOdd(fixtureAttachment(t, "attack-zip-html-search.eml", "invoice.zip"), Options{})
	if len(r.Archive) != 1 || !slices.Equal(r.Archive[0].Active, []string{"remote-share", "search-uri"}) || r.Active != nil {
		t.Fatalf("archive %+v, active %v", r.Archive, r.Active)
	}
	pdf := fixtureAttachment(t, "attack-pdf-embedded-exe.eml", "invoice.pdf")
	r = inspectOdd(buildZip(t, zent{name: "a.pdf", data: pdf}), Options{})
	if len(r.Archive) != 2 || r.Archive[1].Depth != 2 || !r.Archive[1].Executable || r.Archive[1].Name != "invoice.exe" ||
		len(r.Embedded) != 0 {
		t.Fatalf("archive %+v, embedded %d", r.Archive, len(r.Embedded))
	}
}

// pdfEmbedding returns a PDF whose one embedded file is z (already
// FlateDecode-compressed).
func pdfEmbedding(z []byte) []byte {
	return []byte(fmt.Sprintf("%%PDF-1.7\n1 0 obj\n<< /Type /EmbeddedFile /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream\nendobj\n%%%%EOF\n", len(z), z))
}

func zlibOf(b []byte) []byte {
	var z bytes.Buffer
	w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// TestCarrierBudget: what a carrier decompresses or decodes is charged to
// the message's budget; past it, limit-decompressed-bytes, and the carried
// file is cut, not read on.
func TestCarrierBudget(t *testing.T) {
	bomb := pdfEmbedding(zlibOf(make([]byte, 8<<20))) // 8 MiB of zeros in ~8 KB
	b := NewBudget(1 << 20)
	r := inspectOdd(bomb, Options{Budget: b})
	if !slices.Contains(r.Defects, DefectLimitDecompressedBytes) || len(r.Embedded) != 1 || r.Embedded[0].Result.Size > 1<<20 {
		t.Fatalf("defects %v, embedded %d", r.Defects, len(r.Embedded))
	}
	// HTML blobs are charged as they are decoded.
	page := "<script>var a=\"" + strings.Repeat(base64.StdEncoding.EncodeToString(minimalPE()), 1) + "\";</script>"
	b = NewBudget(100)
	r = inspectOdd([]byte(page), Options{Budget: b, Name: "a.html"})
	if !slices.Contains(r.Defects, DefectLimitDecompressedBytes) || len(r.Embedded) != 0 {
		t.Fatalf("html: defects %v, embedded %d", r.Defects, len(r.Embedded))
	}
	// Unsupported filters fail closed.
	lzw := []byte("%PDF-1.7\n1 0 obj\n<< /Type /EmbeddedFile /Length 3 /Filter /LZWDecode >>\nstream\nabc\nendstream\nendobj\n")
	if r := inspectOdd(lzw, Options{}); !slices.Contains(r.Defects, DefectPDFUnsupportedFilter) {
		t.Fatalf("lzw: %v", r.Defects)
	}
}

// TestFATChainLoop: a FAT whose chain loops ends at the volume's cluster
// count; a file size past the image is cut.
func TestFATChainLoop(t *testing.T) {
	img := fixtureAttachment(t, "attack-img-exe.eml", "backup.bin")
	img = bytes.Clone(img)
	// cluster 2 -> 2 in both FATs; size 1 GiB
	for _, fat := range []int{512, 1024} {
		img[fat+3] = 0x02
		img[fat+4] = img[fat+4] & 0xF0
	}
	binary.LittleEndian.PutUint32(img[3*512+28:], 1<<30)
	r := inspectOdd(img, Options{Name: "x.img"})
	if len(r.Embedded) != 1 || r.Embedded[0].Result.Size > int64(len(img)) {
		t.Fatalf("embedded %+v", r.Embedded)
	}
}

// TestPDFNameEscapes: #xx escapes in names are read as PDF readers do.
func TestPDFNameEscapes(t *testing.T) {
	r := inspectOdd([]byte("%PDF-1.4\n1 0 obj << /S /J#61vaScript /#4Aaunch >> endobj"), Options{})
	if !slices.Equal(r.Active, []string{"pdf-javascript"}) {
		t.Fatalf("active %v", r.Active)
	}
}

// carrierSeeds are the carriers of testdata/carriers, decoded.
func carrierSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, c := range [][2]string{
		{"attack-html-smuggling.eml", "invoice.html"}, {"attack-svg-script.eml", "voicemail.svg"},
		{"attack-onenote-exe.eml", "invoice.one"}, {"attack-pdf-embedded-exe.eml", "invoice.pdf"},
		{"attack-pdf-launch.eml", "invoice.pdf"}, {"attack-rtf-objdata.eml", "report.doc"},
		{"attack-msc.eml", "report.msc"}, {"attack-vhd-exe.eml", "backup.vhd"}, {"attack-img-exe.eml", "backup.bin"},
		{"attack-iso-exe.eml", "photos.iso"}, {"benign-pdf-facturx.eml", "invoice.pdf"}, {"benign-html-newsletter.eml", "newsletter.html"},
		{"attack-docx-ole-package.eml", "report.docx"},
	} {
		out = append(out, fixtureAttachment(f, c[0], c[1]))
	}
	return out
}

// fuzzCarrier runs one carrier reader on b with small budgets and no
// panic recovery. Properties: no panic; carried files and decoded bytes
// stay within the budget given.
func fuzzCarrier(t *testing.T, c carrier, b []byte) {
	carrierRecover = false
	defer func() { carrierRecover = true }()
	const budget = 4 << 20
	var res Result
	o := Options{Budget: NewBudget(budget), Spill: 8 << 20, ArchiveEntries: 50}.withDefaults()
	w := newWalker(o, &res, 0)
	w.carrier(c, bytes.NewReader(b), 0, false)
	var total int64
	for _, e := range res.Embedded {
		total += e.Result.Size
	}
	if len(res.Embedded) > maxEmbedded || o.Budget.Left() < -int64(64<<10) {
		t.Fatalf("%d carried files, budget left %d", len(res.Embedded), o.Budget.Left())
	}
}

func FuzzPDF(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if bytes.HasPrefix(s, []byte("%PDF")) {
			f.Add(s)
		}
	}
	f.Add(pdfEmbedding(zlibOf([]byte("hello"))))
	f.Add([]byte("%PDF-1.5\n4 0 obj\n<< /Type /ObjStm /Length 5 /Filter [/AHx /A85] >>\nstream\n41424>\nendstream"))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierPDF, b) })
}

func FuzzRTF(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if bytes.HasPrefix(s, []byte(`{\rt`)) {
			f.Add(s)
		}
	}
	f.Add([]byte(`{\rtf1{\object{\*\objdata 01050000{\*\x}020000\bin4 abcd}}}`))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierRTF, b) })
}

func FuzzMarkup(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if bytes.HasPrefix(s, []byte("<")) {
			f.Add(s)
		}
	}
	f.Add([]byte(`<a href="data:application/zip;base64,UEsDBA==" onclick=x>`))
	f.Add([]byte(`<meta http-equiv=refresh content="0;url=search-ms:crumb=location:\\h\s">`))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierMarkup, b) })
}

func FuzzOneNote(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if bytes.HasPrefix(s, magicOneNote) {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierOneNote, b) })
}

func FuzzICS(f *testing.F) {
	f.Add([]byte("BEGIN:VCALENDAR\r\nATTACH;VALUE=BINARY;ENCODING=BASE64;X-FILENAME=a.exe:TVqQ\r\n AAMA\r\nEND:VCALENDAR\r\n"))
	f.Add([]byte("ATTACH;FMTTYPE=\"a:b\":https://example.com/\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierICS, b) })
}

func FuzzDisk(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if isFATBoot(s) || isMBRDisk(s) {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { fuzzCarrier(t, carrierDisk, b) })
}

func FuzzOLEPackage(f *testing.F) {
	f.Add([]byte{20, 0, 0, 0, 2, 0, 'a', 0, 'b', 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 'M', 'Z'})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, data, _ := parseOLEPackage(b)
		if len(data) > len(b) || len(name) > len(b) {
			t.Fatalf("name %d, data %d from %d bytes", len(name), len(data), len(b))
		}
		var res Result
		w := newWalker(Options{}.withDefaults(), &res, 0)
		carrierRecover = false
		defer func() { carrierRecover = true }()
		w.ole1(b, &carried{}, func(string, io.Reader, int64) bool { return true })
	})
}

// TestPDFStreamed: a PDF larger than the sniffed head is read as it is
// written (pdfStreamer), keeping only what follows its first embedded file
// or object stream; it must find what the random-access reader finds,
// whatever the chunking, with the interesting objects near the start, past
// the streamer's trimmed window, or at the end.
func TestPDFStreamed(t *testing.T) {
	pad := func(n int) []byte {
		return bytes.Repeat([]byte("% padding line of a PDF comment, /Names (x) /F 4 0 R\n"), n/52+1)[:n]
	}
	for _, seed := range [][2]string{
		{"attack-pdf-embedded-exe.eml", "invoice.pdf"}, {"attack-pdf-launch.eml", "invoice.pdf"},
		{"benign-pdf-facturx.eml", "invoice.pdf"}, {"benign-pdf-link.eml", "invoice.pdf"},
	} {
		pdf := fixtureAttachment(t, seed[0], seed[1])
		hdr := bytes.IndexByte(pdf, '\n') + 1
		for _, n := range []int{4 << 10, 700 << 10, 3 << 20} {
			for _, where := range []string{"before", "after"} {
				var body []byte
				if where == "before" {
					body = append(append(append([]byte(nil), pdf[:hdr]...), pad(n)...), pdf[hdr:]...)
				} else {
					body = append(append([]byte(nil), pdf...), pad(n)...)
				}
				var want Result
				w := newWalker(Options{}.withDefaults(), &want, 0)
				want.addActive(w.carrier(carrierPDF, bytes.NewReader(body), 0, false))
				for _, chunk := range []int{1, 4093, 32 << 10} {
					if chunk == 1 && n > 4<<10 {
						continue
					}
					got := inspectChunks(Options{}, body, chunk)
					if !slices.Equal(got.Active, want.Active) || len(got.Embedded) != len(want.Embedded) {
						t.Fatalf("%s pad %d %s chunk %d: active %v embedded %d, random access %v %d",
							seed[0], n, where, chunk, got.Active, len(got.Embedded), want.Active, len(want.Embedded))
					}
					for i := range got.Embedded {
						if got.Embedded[i].Name != want.Embedded[i].Name || got.Embedded[i].Result.SHA256 != want.Embedded[i].Result.SHA256 {
							t.Fatalf("%s pad %d %s chunk %d: embedded %d differs", seed[0], n, where, chunk, i)
						}
					}
				}
			}
		}
	}
}

// FuzzPDFStreamed: a PDF past the sniffed head is read as it is written;
// the Result must not depend on how the body is cut into writes, and must
// be what the random-access reader finds.
func FuzzPDFStreamed(f *testing.F) {
	for _, s := range carrierSeeds(f) {
		if bytes.HasPrefix(s, []byte("%PDF")) {
			f.Add(s, uint16(100))
		}
	}
	prefix := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte("%\n"), 2000)...)
	f.Fuzz(func(t *testing.T, b []byte, chunk uint16) {
		body := append(append([]byte(nil), prefix...), b...)
		o := Options{Budget: NewBudget(64 << 20), Spill: 8 << 20}
		r1 := inspectChunks(o, body, 32<<10)
		o.Budget = NewBudget(64 << 20)
		r2 := inspectChunks(o, body, int(chunk)%8192+1)
		if !reflect.DeepEqual(r1, r2) {
			t.Fatalf("chunking changes the result:\n%+v\n%+v", r1, r2)
		}
		var want Result
		w := newWalker(Options{Budget: NewBudget(64 << 20), Spill: 8 << 20}.withDefaults(), &want, 0)
		want.addActive(w.carrier(carrierPDF, bytes.NewReader(body), 0, false))
		if !slices.Equal(r1.Active, want.Active) || len(r1.Embedded) != len(want.Embedded) {
			t.Fatalf("streamed %v %d, random access %v %d", r1.Active, len(r1.Embedded), want.Active, len(want.Embedded))
		}
	})
}
