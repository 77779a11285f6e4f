package inspect

import (
	"archive/zip"
	"bytes"
	"slices"
	"testing"
)

// TestEntryMacros: an Office document with macros inside a zip (directly
// or a zip deeper) marks its entry, and the attachment; a clean document
// next to it does not.
func TestEntryMacros(t *testing.T) {
	docm := buildZip(t, zent{name: "[Content_Types].xml", data: []byte("<Types/>")}, zent{name: "word/vbaProject.bin", data: []byte("x")})
	docx := buildZip(t, zent{name: "[Content_Types].xml", data: []byte("<Types/>")}, zent{name: "word/document.xml", data: []byte("<w/>")})
	outer := buildZip(t, zent{name: "clean.docx", data: docx}, zent{name: "report.docx", data: docm},
		zent{name: "inner.zip", data: buildZip(t, zent{name: "deep.docx", data: docm})})
	res := inspectBytes(t, Options{ArchiveDepth: 3}, outer)
	if !res.Macros {
		t.Fatal("attachment not marked Macros")
	}
	want := map[string]bool{"clean.docx": false, "report.docx": true, "inner.zip": true, "deep.docx": true}
	for _, e := range res.Archive {
		if w, ok := want[e.Name]; ok && e.Macros != w {
			t.Errorf("%s: Macros %v, want %v", e.Name, e.Macros, w)
		}
	}
	res = inspectBytes(t, Options{ArchiveDepth: 3}, buildZip(t, zent{name: "clean.docx", data: docx}))
	if res.Macros || slices.ContainsFunc(res.Archive, func(e Entry) bool { return e.Macros }) {
		t.Errorf("clean document marked: %+v", res.Archive)
	}
}

// TestDeflate64: a Deflate64 entry cannot be decompressed here; it is
// listed and named by a limit defect (fail closed), not archive-unsupported.
func TestDeflate64(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "setup.exe", Method: methodDeflate64, CompressedSize64: 5, UncompressedSize64: 5000})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("12345"))
	zw.Close()
	res := inspectBytes(t, Options{ArchiveDepth: 3}, buf.Bytes())
	if !slices.Equal(res.Defects, []string{DefectLimitDeflate64}) {
		t.Errorf("defects %q, want [%s]", res.Defects, DefectLimitDeflate64)
	}
	if len(res.Archive) != 1 || res.Archive[0].Name != "setup.exe" || res.Archive[0].Size != 5000 {
		t.Errorf("entries %+v", res.Archive)
	}
}
