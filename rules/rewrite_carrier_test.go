package rules

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// TestStripCarriedFileStripsCarrier: stripping a file carried inside a
// document (a PDF's embedded executable "2.e1", an executable inside a
// message attached as application/octet-stream "2.2") replaces the part
// that carries it: the output holds neither the file nor its carrier, and
// re-parsed it has no executable left.
func TestStripCarriedFileStripsCarrier(t *testing.T) {
	for _, c := range []struct{ file, path, name string }{
		{"../testdata/carriers/attack-pdf-embedded-exe.eml", "2.e1", "invoice.exe"},
		{"../testdata/carriers/attack-rtf-objdata.eml", "2.e1", "setup.exe"},
		{"../testdata/carriers/attack-vhd-exe.eml", "2.e1", "SETUP.EXE"},
		{"../testdata/carriers/attack-iso-exe.eml", "2.e2", "SETUP.EXE"},
		{"../testdata/carriers/attack-eml-as-octet.eml", "2.2", "scan.exe"},
	} {
		raw, err := os.ReadFile(c.file)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := mimeparse.Parse(bytes.NewReader(raw), mimeparse.DefaultLimits())
		var leaf, carrier *mimeparse.Part
		for _, p := range msg.Parts {
			if p.Path == c.path {
				leaf = p
			}
			if p.Path == "2" {
				carrier = p
			}
		}
		if leaf == nil || !leaf.Executable || leaf.Filename != c.name {
			t.Fatalf("%s: no executable leaf %s named %s: %+v", c.file, c.path, c.name, leaf)
		}
		var out bytes.Buffer
		if _, err := Rewrite(&out, bytes.NewReader(raw), msg, &Edits{Strip: []Strip{{Path: c.path, Rule: "carried"}}}); err != nil {
			t.Fatalf("%s: Rewrite: %v", c.file, err)
		}
		body := string(raw[carrier.BodyOffset:carrier.EndOffset])
		if strings.Contains(out.String(), body[:min(len(body), 200)]) {
			t.Errorf("%s: the carrier's bytes are still in the output", c.file)
		}
		if !strings.Contains(out.String(), c.name) || !strings.Contains(out.String(), "rule carried") {
			t.Errorf("%s: the notice does not name %s:\n%s", c.file, c.name, out.String())
		}
		again, _ := mimeparse.Parse(bytes.NewReader(out.Bytes()), mimeparse.DefaultLimits())
		for _, p := range again.Parts {
			if p.Executable || len(p.Active) > 0 {
				t.Errorf("%s: part %s is still there after the strip (%s, active %v)", c.file, p.Path, p.DetectedType, p.Active)
			}
		}
	}
}
