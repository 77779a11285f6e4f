package mimeparse

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReplaceByOffsets proves the offsets are what a rewriter needs:
// replacing the bytes [HeaderOffset, EndOffset) of any part with a new part
// gives a message whose tree is the same, minus the replaced part's
// subtree, with the new part in its place.
func TestReplaceByOffsets(t *testing.T) {
	const notice = "Content-Type: text/plain\r\n\r\nremoved"
	for _, f := range fixtures(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := Parse(bytes.NewReader(raw), DefaultLimits())
		if !m.Parts[0].IsMultipart {
			continue // malformed fixtures have no single right rewrite
		}
		// the primary reading's tree; other readings follow the bytes
		m.Parts = primaryParts(m.Parts)
		for _, p := range m.Parts[1:] {
			if decodedOnly(m, p) {
				continue
			}
			var edited []byte
			edited = append(edited, raw[:p.HeaderOffset]...)
			edited = append(edited, notice...)
			edited = append(edited, raw[p.EndOffset:]...)
			m2, _ := Parse(bytes.NewReader(edited), DefaultLimits())
			m2.Parts = primaryParts(m2.Parts)
			// the expected tree: the parts before p, the notice, the parts
			// after p's subtree (descendants are the next parts deeper than p)
			i := indexOf(m.Parts, p)
			j := i + 1
			for j < len(m.Parts) && m.Parts[j].Depth > p.Depth {
				j++
			}
			want := append(append(append([]*Part{}, m.Parts[:i]...), &Part{ContentType: "text/plain", SHA256: sha256hex("removed")}), m.Parts[j:]...)
			if len(m2.Parts) != len(want) {
				t.Errorf("%s: replacing %s gives %d parts, want %d", filepath.Base(f), p.Path, len(m2.Parts), len(want))
				continue
			}
			for k, w := range want {
				g := m2.Parts[k]
				if g.ContentType != w.ContentType || g.SHA256 != w.SHA256 {
					t.Errorf("%s: replacing %s: part %d is %s %.8s, want %s %.8s", filepath.Base(f), p.Path, k, g.ContentType, g.SHA256, w.ContentType, w.SHA256)
				}
			}
		}
	}
}

// primaryParts returns the parts of the primary reading.
func primaryParts(parts []*Part) []*Part {
	var out []*Part
	for _, p := range parts {
		if p.Reading == "" {
			out = append(out, p)
		}
	}
	return out
}

func indexOf(parts []*Part, p *Part) int {
	for i, q := range parts {
		if q == p {
			return i
		}
	}
	return -1
}

// TestNoHash: Limits.NoHash leaves every SHA256 empty and changes nothing
// else the parse finds.
func TestNoHash(t *testing.T) {
	var files []string
	filepath.WalkDir("../testdata", func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".eml") {
			files = append(files, p)
		}
		return nil
	})
	if len(files) < 100 {
		t.Fatalf("only %d messages under ../testdata", len(files))
	}
	hashed := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Parse(bytes.NewReader(raw), DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		lim := DefaultLimits()
		lim.NoHash = true
		got, err := Parse(bytes.NewReader(raw), lim)
		if err != nil {
			t.Fatalf("%s: NoHash: %v", f, err)
		}
		for i := range want.Parts {
			if want.Parts[i].SHA256 != "" {
				hashed++
			}
			want.Parts[i].SHA256 = ""
		}
		for i := range got.Parts {
			if got.Parts[i].SHA256 != "" {
				t.Errorf("%s: part %d hashed with NoHash", f, i)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: NoHash changed the parse beyond SHA256", f)
		}
	}
	if hashed == 0 {
		t.Fatal("no part hashed without NoHash")
	}
}
