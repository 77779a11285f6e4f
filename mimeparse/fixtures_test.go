package mimeparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite the golden .json files beside the .eml fixtures")

// fixtureDirs hold .eml fixtures: the shared MIME tricks and this package's own.
var fixtureDirs = []string{"../testdata/mime", "testdata"}

func fixtures(t testing.TB) []string {
	var files []string
	for _, d := range fixtureDirs {
		m, err := filepath.Glob(filepath.Join(d, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	return files
}

type goldenPart struct {
	Path         string   `json:"path"`
	Depth        int      `json:"depth"`
	ContentType  string   `json:"content_type"`
	Charset      string   `json:"charset,omitempty"`
	Disposition  string   `json:"disposition,omitempty"`
	Filename     string   `json:"filename,omitempty"`
	Names        []string `json:"names,omitempty"`
	Ext          string   `json:"ext,omitempty"`
	CTE          string   `json:"transfer_encoding,omitempty"`
	IsMultipart  bool     `json:"is_multipart,omitempty"`
	IsAttachment bool     `json:"is_attachment"`
	Size         int64    `json:"size"`
	SHA256       string   `json:"sha256,omitempty"`
	DetectedType string   `json:"detected_type,omitempty"`
	Executable   bool     `json:"executable,omitempty"`
	Defects      []string `json:"defects,omitempty"`
	Offsets      [3]int64 `json:"offsets"`
	Reading      string   `json:"reading,omitempty"`
}

type golden struct {
	Headers [][2]string  `json:"headers"`
	Defects []string     `json:"defects"`
	Text    string       `json:"text"`
	Parts   []goldenPart `json:"parts"`
}

func summarize(m *Message) golden {
	g := golden{Defects: m.Defects, Text: m.Text}
	for _, f := range m.Fields {
		g.Headers = append(g.Headers, [2]string{f.Name, f.Value})
	}
	for _, p := range m.Parts {
		g.Parts = append(g.Parts, goldenPart{
			Path: p.Path, Depth: p.Depth, ContentType: p.ContentType, Charset: p.Charset,
			Disposition: p.Disposition, Filename: p.Filename, Names: p.Names, Ext: p.Ext,
			CTE: p.TransferEncoding, IsMultipart: p.IsMultipart, IsAttachment: p.IsAttachment,
			Size: p.Size, SHA256: p.SHA256, DetectedType: p.DetectedType, Executable: p.Executable,
			Defects: p.Defects, Offsets: [3]int64{p.HeaderOffset, p.BodyOffset, p.EndOffset}, Reading: p.Reading,
		})
	}
	return g
}

// TestGolden parses every fixture and compares the whole description with
// the golden .json beside it (go test -update rewrites them; review the diff).
func TestGolden(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(bytes.NewReader(raw), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			checkOffsets(t, f, raw, m)
			got, _ := json.MarshalIndent(summarize(m), "", " ")
			got = append(got, '\n')
			gf := strings.TrimSuffix(f, ".eml") + ".json"
			if *update {
				if err := os.WriteFile(gf, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gf)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", f, gf, got)
			}
		})
	}
}

// partSpec is what a fixture must show for one part.
type partSpec struct {
	path, ctype, filename string
	names                 []string
	ext                   string
	defects               []string
}

// TestTricks asserts, for each MIME trick, the parts, names, types and
// defects by hand (independently of the golden files).
func TestTricks(t *testing.T) {
	tests := []struct {
		file    string
		nparts  int
		defects []string // exactly the message's defects
		parts   []partSpec
		check   func(t *testing.T, m *Message)
	}{
		{file: "folding-obs.eml", nparts: 1, defects: []string{DefectSpaceBeforeColon},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Header("Subject"), "a folded subject\tline")
				tcompare(t, m.Header("X-Obs"), "value with space before colon")
				tcompare(t, m.Header("To"), "Jürgen <j@example.org>,\tSchön <s@example.org>") // RFC 5322 §2.2.3: unfolding keeps the WSP
			}},
		{file: "8bit-header.eml", nparts: 1, defects: []string{Defect8bitHeader},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Header("Subject"), "caf\uFFFD 8-bit latin-1 byte")
				tcompare(t, m.Header("X-UTF8"), "ünïcödé")
			}},
		{file: "8bit-filename.eml", nparts: 3, defects: []string{Defect8bitHeader}, parts: []partSpec{
			{path: "1", ctype: "text/plain", filename: "Список.txt", ext: "txt"}, // raw KOI8-R read in the part's charset
			{path: "2", filename: "\uFFFD.exe", ext: "exe"}}},                    // no charset to read it in
		{file: "partial-external.eml", nparts: 3, defects: []string{DefectPartialMessage, DefectExternalBody}, parts: []partSpec{
			{path: "1", ctype: "message/partial", defects: []string{DefectPartialMessage}},
			{path: "2", ctype: "message/external-body", defects: []string{DefectExternalBody}}}},
		{file: "encoded-multipart.eml", nparts: 3, defects: []string{DefectEncodedMultipart, DefectMissingStartBoundary}},
		{file: "uuencode-cte.eml", nparts: 2, parts: []partSpec{
			{path: "1", filename: "invoice.txt"}, {path: "1.u1", filename: "invoice.exe", ext: "exe"}},
			check: func(t *testing.T, m *Message) {
				tcompare(t, findPart(m, "1.u1").Executable, true)
				tcompare(t, len(m.Attachments()), 2)
			}},
		{file: "lf-only.eml", nparts: 3, parts: []partSpec{
			{path: "1", ctype: "text/plain"},
			{path: "2", ctype: "application/octet-stream", filename: "x.bin", ext: "bin"}},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Parts[1].Size, int64(len("line one\nline two")))
				tcompare(t, m.Parts[2].Size, int64(6))
			}},
		{file: "mixed-endings.eml", nparts: 3, check: func(t *testing.T, m *Message) {
			tcompare(t, m.Parts[1].Size, int64(len("CRLF line\r\nLF line")))
			tcompare(t, m.Parts[2].Size, int64(len("last")))
		}},
		{file: "base64-lenient.eml", nparts: 5,
			defects: []string{DefectInvalidBase64, DefectBase64Padding, DefectBase64AfterPadding},
			parts: []partSpec{
				{path: "1", ctype: "application/octet-stream", filename: "ws.bin", ext: "bin"},
				{path: "2", filename: "junk.bin", defects: []string{DefectInvalidBase64}},
				{path: "3", filename: "nopad.bin", defects: []string{DefectBase64Padding}},
				{path: "4", filename: "afterpad.bin", defects: []string{DefectBase64AfterPadding}}},
			check: func(t *testing.T, m *Message) {
				for _, i := range []int{1, 2, 3} {
					tcompare(t, m.Parts[i].SHA256, sha256hex("Hello, world!"))
				}
				tcompare(t, m.Parts[4].SHA256, sha256hex("HiHi"))
			}},
		{file: "qp.eml", nparts: 1, defects: []string{DefectInvalidQP}, check: func(t *testing.T, m *Message) {
			tcompare(t, m.Parts[0].SHA256, sha256hex("soft break, caf\xe9, lower \xe9, bad =ZZ escape, = sign, trailing"))
			tcompare(t, m.Text, "soft break, café, lower é, bad =ZZ escape, = sign, trailing")
		}},
		{file: "unknown-cte.eml", nparts: 1, defects: []string{DefectUnknownCTE}, check: func(t *testing.T, m *Message) {
			tcompare(t, m.Parts[0].SHA256, sha256hex("uryyb\r\n"))
		}},
		{file: "boundaries.eml", nparts: 5, parts: []partSpec{
			{path: "0", ctype: "multipart/mixed"}, {path: "1", ctype: "multipart/alternative"},
			{path: "1.1", ctype: "text/plain"}, {path: "1.2", ctype: "text/html"},
			{path: "2", ctype: "text/plain", filename: "notes.txt", ext: "txt"}},
			check: func(t *testing.T, m *Message) {
				raw, _ := os.ReadFile("../testdata/mime/boundaries.eml")
				s := string(raw)
				// offsets, exactly: a part starts after its delimiter line, its
				// body after the empty line, and it ends before the line break
				// that precedes the next delimiter.
				p := findPart(m, "2")
				tcompare(t, p.HeaderOffset, int64(strings.Index(s, "Content-Type: text/plain; name=notes.txt")))
				tcompare(t, p.BodyOffset, int64(strings.Index(s, "notes\r\n--")))
				tcompare(t, p.EndOffset, int64(strings.Index(s, "\r\n--quoted boundary--")))
				alt := findPart(m, "1")
				tcompare(t, alt.HeaderOffset, int64(strings.Index(s, "Content-Type: multipart/alternative")))
				tcompare(t, alt.EndOffset, int64(strings.Index(s, "\r\n--quoted boundary\t")))
				html := findPart(m, "1.2")
				tcompare(t, s[html.BodyOffset:html.EndOffset], "<p>html</p>")
				root := m.Parts[0]
				tcompare(t, root.BodyOffset, int64(strings.Index(s, "preamble")))
				tcompare(t, root.EndOffset, int64(len(s)))
				f := root.Fields[1]
				tcompare(t, s[f.Start:f.End], "Content-Type: multipart/mixed; boundary=\"quoted boundary\"\r\n")
				tcompare(t, f.Raw, ` multipart/mixed; boundary="quoted boundary"`)
			}},
		{file: "missing-final-boundary.eml", nparts: 3, defects: []string{DefectMissingFinalBoundary},
			parts: []partSpec{{path: "2", ctype: "application/pdf", filename: "doc.pdf", ext: "pdf"}}},
		{file: "epilogue.eml", nparts: 3, defects: []string{DefectBytesAfterFinalBoundary}},
		{file: "rfc822.eml", nparts: 8, parts: []partSpec{
			{path: "2", ctype: "message/rfc822"}, {path: "2.0", ctype: "multipart/mixed"},
			{path: "2.1", ctype: "text/plain"}, {path: "2.2", filename: "inner.exe", ext: "exe"},
			{path: "3", ctype: "message/global"}, {path: "3.1", ctype: "text/plain"}},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Parts[5].Executable, true)
				tcompare(t, findPart(m, "3.1").Header("Subject"), "glöbal")
				att := m.Attachments()
				tcompare(t, len(att), 1)
				tcompare(t, att[0].Path, "2.2")
			}},
		{file: "encoded-words.eml", nparts: 3,
			defects: []string{DefectUnknownCharset, DefectEncodedWordInParameter},
			parts:   []partSpec{{path: "1", filename: "счет.pdf", ext: "pdf"}},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Header("From"), "élèonore <e@example.org>")
				tcompare(t, m.Header("Subject"), "café au lait and what")
			}},
		{file: "rfc2231.eml", nparts: 4, defects: []string{DefectBrokenRFC2231}, parts: []partSpec{
			{path: "1", filename: "€ rates report.xlsx", ext: "xlsx"},
			{path: "2", filename: "naïve.txt", ext: "txt"},
			{path: "3", filename: "ac.txt", defects: []string{DefectBrokenRFC2231}}}},
		{file: "duplicates.eml", nparts: 6,
			defects: []string{DefectDuplicateContentType, DefectDuplicateCTE, DefectDuplicateDisposition},
			parts: []partSpec{{path: "1", ctype: "text/plain", filename: "readme.txt",
				names: []string{"readme.txt", "setup.exe"}, ext: "txt"}}},
		{file: "names.eml", nparts: 5, defects: []string{DefectNameFilenameMismatch, DefectMixedRFC2231,
			DefectBidiInFilename, DefectTrailingDotSpace}, parts: []partSpec{
			{path: "1", filename: "invoice.exe", names: []string{"invoice.exe", "invoice.pdf"}, ext: "exe",
				defects: []string{DefectNameFilenameMismatch}},
			{path: "2", filename: "other.pdf", names: []string{"other.pdf", "plain.exe"}, ext: "pdf",
				defects: []string{DefectMixedRFC2231}},
			{path: "3", filename: "photo\u202egpj.exe", ext: "exe", defects: []string{DefectBidiInFilename}},
			{path: "4", filename: "setup.exe. .", ext: "exe", defects: []string{DefectTrailingDotSpace}}}},
		{file: "type-mismatch.eml", nparts: 2, defects: []string{DefectTypeMismatch},
			parts: []partSpec{{path: "1", ctype: "image/jpeg", filename: "photo.jpg", ext: "jpg"}},
			check: func(t *testing.T, m *Message) { tcompare(t, m.Parts[1].Executable, true) }},
		{file: "boundary-params.eml", nparts: 4, defects: []string{DefectMultipleBoundaries, DefectMissingFinalBoundary},
			check: func(t *testing.T, m *Message) { tcompare(t, m.Parts[1].SHA256, sha256hex("part")) }},
		{file: "no-boundary.eml", nparts: 3, defects: []string{DefectMultipartWithoutBoundary},
			parts: []partSpec{{path: "1", ctype: "multipart/mixed"}},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Parts[0].IsMultipart, false)
				// the body as one leaf, and a.exe of the guessed boundary's reading
				tcompare(t, len(m.Attachments()), 2)
				tcompare(t, findPart(m, "1.r1.1").Reading, ReadingGuessedBoundary)
			}},
		{file: "no-blank-line.eml", nparts: 2, defects: []string{DefectMissingHeaderBodySeparator},
			parts: []partSpec{{path: "1", ctype: "text/plain"}}},
		{file: "deep.eml", nparts: 21, defects: []string{DefectLimitMimeDepth}},
		{file: "digest.eml", nparts: 4, parts: []partSpec{
			{path: "1", ctype: "message/rfc822"}, {path: "1.1", ctype: "text/plain"}, {path: "2", ctype: "text/plain"}}},
		{file: "ambiguous-boundary.eml", nparts: 5, defects: []string{DefectAmbiguousBoundary, DefectEmptyMultipart}},
		{file: "encoded-message.eml", nparts: 3, defects: []string{DefectEncodedMessage},
			parts: []partSpec{{path: "1", ctype: "message/rfc822"}, {path: "1.1", ctype: "text/plain"}},
			check: func(t *testing.T, m *Message) {
				// the decoded message is parsed: its body is text, not an attachment
				tcompare(t, findPart(m, "1.1").Header("Subject"), "hidden")
				tcompare(t, findPart(m, "1.1").SHA256, sha256hex("hello\r\n"))
				tcompare(t, len(m.Attachments()), 0)
				tcompare(t, findPart(m, "1").SHA256, sha256hex("From: x@example.org\r\nSubject: hidden\r\n\r\nhello\r\n"))
			}},
		{file: "empty-and-repeated.eml", nparts: 3, defects: []string{DefectEmptyPart},
			check: func(t *testing.T, m *Message) {
				tcompare(t, m.Parts[1].SHA256, sha256hex("after a repeated delimiter"))
				tcompare(t, m.Parts[2].Size, int64(0))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m := parseFile(t, filepath.Join("../testdata/mime", tc.file))
			tcompare(t, len(m.Parts), tc.nparts)
			got := slices.Clone(m.Defects)
			want := slices.Clone(tc.defects)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("defects %q, want %q", got, want)
			}
			for _, ps := range tc.parts {
				p := findPart(m, ps.path)
				if p == nil {
					t.Errorf("no part %s", ps.path)
					continue
				}
				if ps.ctype != "" {
					tcompare(t, p.ContentType, ps.ctype)
				}
				if ps.filename != "" {
					tcompare(t, p.Filename, ps.filename)
				}
				if ps.ext != "" {
					tcompare(t, p.Ext, ps.ext)
				}
				if ps.names != nil && !reflect.DeepEqual(p.Names, ps.names) {
					t.Errorf("part %s names %q, want %q", ps.path, p.Names, ps.names)
				}
				for _, d := range ps.defects {
					if !slices.Contains(p.Defects, d) {
						t.Errorf("part %s defects %q lack %s", ps.path, p.Defects, d)
					}
				}
			}
			if tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

// TestLimits: each limit stops work with its defect, and the parse finishes.
func TestLimits(t *testing.T) {
	raw, err := os.ReadFile("../testdata/mime/rfc822.eml")
	if err != nil {
		t.Fatal(err)
	}
	lim := DefaultLimits()
	lim.MimeParts = 3
	m, _ := Parse(bytes.NewReader(raw), lim)
	tcompare(t, len(m.Parts), 3)
	tcompare(t, slices.Contains(m.Defects, DefectLimitMimeParts), true)
	tcompare(t, m.Size, int64(len(raw)))

	lim = DefaultLimits()
	lim.MimeDepth = 1
	m, _ = Parse(bytes.NewReader(raw), lim)
	tcompare(t, slices.Contains(m.Defects, DefectLimitMimeDepth), true)
	tcompare(t, findPart(m, "2").ContentType, "message/rfc822")
	tcompare(t, len(m.Parts), 4) // 0, 1, 2 and 3 as leaves

	lim = DefaultLimits()
	lim.HeaderBytes = 40
	m, _ = Parse(bytes.NewReader(raw), lim)
	tcompare(t, slices.Contains(m.Defects, DefectLimitHeaderBytes), true)

	m, _ = Parse(strings.NewReader("Subject: x\rContent-Type: application/x-msdownload\r\n\r\nMZ"), DefaultLimits())
	tcompare(t, slices.Contains(m.Defects, DefectBareCR), true)
	tcompare(t, m.Parts[0].ContentType, "text/plain")

	many := strings.Repeat("a:\n", maxFields+10) + "\nbody"
	m, _ = Parse(strings.NewReader(many), DefaultLimits())
	tcompare(t, len(m.Fields), maxFields)
	tcompare(t, slices.Contains(m.Defects, DefectLimitHeaderBytes), true)
	tcompare(t, m.HeaderTruncated, true)
	tcompare(t, m.HasHeader("b"), false)

	// Past the field limit, HasHeader still sees the names (case aside),
	// and ScanHeader every field.
	late := strings.Repeat("a:\n", maxFields+10) + "X-Late :1\nx-late-2: 2\n folded\n\nbody"
	m, _ = Parse(strings.NewReader(late), DefaultLimits())
	tcompare(t, len(m.Fields), maxFields)
	tcompare(t, m.HeaderTruncated, true)
	tcompare(t, m.HasHeader("x-late") && m.HasHeader("X-LATE-2") && m.HasHeader("A") && !m.HasHeader("x-la"), true)
	var all []Field
	tcompare(t, ScanHeader(strings.NewReader(late), func(f Field) { all = append(all, f) }), nil)
	tcompare(t, len(all), maxFields+12)
	tcompare(t, reflect.DeepEqual(all[:maxFields], m.Fields), true)
	tcompare(t, all[maxFields+11], Field{Name: "x-late-2", Value: "2 folded", Raw: " 2\n folded",
		Start: int64(3*(maxFields+10) + 10), End: int64(3*(maxFields+10) + 10 + 20)})
	m, _ = Parse(strings.NewReader("Subject: x\n\nbody"), DefaultLimits())
	tcompare(t, m.HeaderTruncated, false)

	lim = DefaultLimits()
	lim.TextBytes = 12
	m, _ = Parse(bytes.NewReader(raw), lim)
	tcompare(t, m.Text, "see attached")
	lim.TextBytes = 20
	m, _ = Parse(bytes.NewReader(raw), lim)
	tcompare(t, m.Text, "see attached\ninner t") // text of every text/* leaf, capped

	lim = DefaultLimits()
	lim.LineLength = 20
	m, _ = Parse(bytes.NewReader(raw), lim)
	tcompare(t, slices.Contains(m.Defects, DefectLimitLineLength), true)

	long := "From: a@example.org\r\nX-Long: " + strings.Repeat("x", bufSize+10) + "\r\nSubject: after\r\n\r\nbody\r\n"
	m, _ = Parse(strings.NewReader(long), DefaultLimits())
	tcompare(t, slices.Contains(m.Defects, DefectLimitLineLength), true)
	tcompare(t, m.Header("Subject"), "after")
	tcompare(t, m.Parts[0].SHA256, sha256hex("body\r\n"))
}

// TestReaderShapes: one-byte, half and data+EOF readers give the same result.
func TestReaderShapes(t *testing.T) {
	files := fixtures(t)
	if _, err := os.Stat(corpusDir); err == nil {
		more, _ := filepath.Glob(filepath.Join(corpusDir, "enmime/mail/*.raw"))
		files = append(files, more...)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := Parse(bytes.NewReader(raw), DefaultLimits())
		for name, r := range map[string]func() interface{ Read([]byte) (int, error) }{
			"OneByteReader": func() interface{ Read([]byte) (int, error) } { return iotest.OneByteReader(bytes.NewReader(raw)) },
			"HalfReader":    func() interface{ Read([]byte) (int, error) } { return iotest.HalfReader(bytes.NewReader(raw)) },
			"DataErrReader": func() interface{ Read([]byte) (int, error) } { return iotest.DataErrReader(bytes.NewReader(raw)) },
		} {
			got, err := Parse(r(), DefaultLimits())
			if err != nil {
				t.Errorf("%s %s: %v", f, name, err)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s gives a different result", f, name)
			}
		}
	}
}

// TestReadError: a read error is returned with what was parsed so far.
func TestReadError(t *testing.T) {
	raw := "From: a@example.org\r\nSubject: s\r\n\r\nbody body body\r\n"
	r := iotest.TimeoutReader(iotest.HalfReader(strings.NewReader(raw)))
	m, err := Parse(r, DefaultLimits())
	if err == nil {
		t.Fatal("no error")
	}
	if m == nil || len(m.Parts) != 1 {
		t.Fatalf("no usable message: %+v", m)
	}
}

func parseFile(t *testing.T, f string) *Message {
	t.Helper()
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(bytes.NewReader(raw), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	checkOffsets(t, f, raw, m)
	return m
}

func findPart(m *Message, path string) *Part {
	for _, p := range m.Parts {
		if p.Path == path {
			return p
		}
	}
	return nil
}

func tcompare[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
