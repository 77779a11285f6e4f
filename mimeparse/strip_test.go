package mimeparse

import (
	"bytes"
	"os"
	"path/filepath"
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
