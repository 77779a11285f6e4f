package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// rewriteInputs lists the messages of the rewrite property test: every
// .eml under testdata/, the parser's fuzz corpus when present, and the
// conformance corpus at ../shared/corpus (relative to the repo root) when
// present (docs/DEVELOPING.md, "Test data outside the repository"). CI=true makes a missing corpus an error.
func rewriteInputs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	add := func(root string, decode func([]byte) []byte) int {
		n := 0
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				if decode == nil && d.Name() == "fuzz" {
					return filepath.SkipDir // Go fuzz corpora are read decoded below
				}
				return nil
			}
			if strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".md") {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				return nil
			}
			if decode != nil {
				if data = decode(data); data == nil {
					return nil
				}
			}
			out[p] = data
			n++
			return nil
		})
		return n
	}
	if add("../testdata", nil) == 0 {
		t.Fatal("no fixtures under ../testdata")
	}
	add("../mimeparse/testdata", nil)
	add("../mimeparse/testdata/fuzz/FuzzParse", decodeFuzzFile)
	corpus := filepath.Join("..", "..", "shared", "corpus")
	if _, err := os.Stat(corpus); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("conformance corpus missing at %s", corpus)
		}
		t.Logf("conformance corpus absent at %s: fixtures only", corpus)
	} else {
		add(corpus, nil)
	}
	return out
}

// decodeFuzzFile reads the first []byte value of a Go fuzz corpus file.
func decodeFuzzFile(b []byte) []byte {
	for _, line := range strings.Split(string(b), "\n") {
		if s, ok := strings.CutPrefix(line, "[]byte("); ok && strings.HasSuffix(s, ")") {
			if v, err := strconv.Unquote(s[:len(s)-1]); err == nil {
				return []byte(v)
			}
		}
	}
	return nil
}

// TestRewriteProperties: over every fixture and corpus message,
//   - an empty plan gives back the same bytes;
//   - stripping every attachment, adding and removing headers and prefixing
//     the subject gives a message that re-parses with no new defect, in
//     which every part not stripped has the same path, type and decoded
//     SHA-256 as before and every stripped part is a text/plain notice.
func TestRewriteProperties(t *testing.T) {
	inputs := rewriteInputs(t)
	lim := mimeparse.DefaultLimits()
	checked := 0
	for name, raw := range inputs {
		msg, err := mimeparse.Parse(bytes.NewReader(raw), lim)
		if err != nil || msg == nil {
			t.Fatalf("%s: parse: %v", name, err)
		}
		var same bytes.Buffer
		if _, err := Rewrite(&same, bytes.NewReader(raw), msg, &Edits{}); err != nil || !bytes.Equal(same.Bytes(), raw) {
			t.Errorf("%s: empty plan changed the message (err %v)", name, err)
		}
		if len(msg.Parts) == 0 {
			continue
		}
		ed := &Edits{
			Headers: []HeaderEdit{
				{Op: "add", Name: "X-Rewrite-Test", Value: "yes", Rule: "t"},
				{Op: "remove", Name: "Received", Rule: "t"},
			},
			SubjectPrefix: "[EXT] ",
		}
		stripped := map[string]bool{}
		for _, p := range msg.Attachments() {
			ed.Strip = append(ed.Strip, Strip{Path: p.Path, Filename: p.Filename, Rule: "t"})
			// A leaf found inside a body (uuencode, TNEF, an encoded
			// message/rfc822) is stripped with the part that carries it.
			stripped[carrierPath(msg, p)] = true
		}
		edits := Plan(msg, ed)
		if err := mimeparse.CheckEdits(edits); err != nil {
			t.Errorf("%s: plan: %v", name, err)
			continue
		}
		var buf bytes.Buffer
		if _, err := Rewrite(&buf, bytes.NewReader(raw), msg, ed); err != nil {
			t.Errorf("%s: rewrite: %v", name, err)
			continue
		}
		after, err := mimeparse.Parse(bytes.NewReader(buf.Bytes()), lim)
		if err != nil {
			t.Errorf("%s: re-parse: %v", name, err)
			continue
		}
		checked++
		for _, problem := range compareRewrite(msg, after, stripped) {
			t.Errorf("%s: %s", name, problem)
		}
		if after.Header("X-Rewrite-Test") != "yes" || after.HasHeader("Received") {
			t.Errorf("%s: header edits not applied", name)
		}
		if !strings.HasPrefix(after.Header("Subject"), "[EXT]") {
			t.Errorf("%s: subject %q lacks the prefix", name, after.Header("Subject"))
		}
	}
	t.Logf("rewrite properties held on %d of %d messages", checked, len(inputs))
}

// compareRewrite lists how after breaks the properties.
func compareRewrite(before, after *mimeparse.Message, stripped map[string]bool) []string {
	var out []string
	byPath := map[string]*mimeparse.Part{}
	for _, p := range after.Parts {
		byPath[p.Path] = p
	}
	for _, p := range before.Parts {
		if insideStripped(p.Path, stripped) {
			continue
		}
		if p.Reading != "" && !stripped[p.Path] {
			// another reading's parts are numbered in the order readings
			// end; what stripping does to them is TestStripFollowsReadings's
			continue
		}
		q := byPath[p.Path]
		if q == nil && stripped[p.Path] && (p.Path == "0" || strings.HasSuffix(p.Path, ".0")) {
			// A multipart read as one leaf (no usable boundary) is numbered
			// like a container; its text/plain notice is a plain leaf.
			q = byPath[strings.TrimSuffix(p.Path, "0")+"1"]
		}
		switch {
		case stripped[p.Path]:
			if q == nil || q.ContentType != "text/plain" || q.IsMultipart {
				out = append(out, "stripped part "+p.Path+" is not a text/plain notice")
			}
		case q == nil:
			out = append(out, "part "+p.Path+" is gone")
		case p.IsMultipart:
			if !q.IsMultipart || q.ContentType != p.ContentType {
				out = append(out, "container "+p.Path+" changed")
			}
		case q.SHA256 != p.SHA256 || q.ContentType != p.ContentType:
			out = append(out, "part "+p.Path+" changed: "+p.ContentType+" "+p.SHA256[:8]+" → "+q.ContentType+" "+q.SHA256[:8])
		}
	}
	old := map[string]bool{}
	for _, d := range before.Defects {
		old[d] = true
	}
	for _, d := range after.Defects {
		if !old[d] {
			out = append(out, "new defect "+d)
		}
	}
	return out
}

// insideStripped reports whether path is below a stripped part (its
// embedded uuencode/TNEF leaves, or the tree of a stripped container).
func insideStripped(path string, stripped map[string]bool) bool {
	for p := range stripped {
		if p == "0" && path != "0" || strings.HasPrefix(path, p+".") {
			return true // the root container holds every part
		}
		if base, ok := strings.CutSuffix(p, ".0"); ok && strings.HasPrefix(path, base+".") && path != p {
			return true // an enclosed multipart "2.0" holds "2.1", "2.2", ...
		}
	}
	return false
}

// FuzzRewrite checks the same properties on arbitrary input: the plan is
// valid for Splice, an empty plan is the identity, and stripping every
// attachment keeps every other part. Seeded with the fixtures.
func FuzzRewrite(f *testing.F) {
	for _, dir := range []string{"../testdata/attacks", "../testdata/benign", "../testdata/packs"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	lim := mimeparse.DefaultLimits()
	lim.MimeParts, lim.ArchiveEntries = 200, 50
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := mimeparse.Parse(bytes.NewReader(raw), lim)
		if err != nil || msg == nil || len(msg.Parts) == 0 {
			return
		}
		ed := &Edits{SubjectPrefix: "[EXT] ", Headers: []HeaderEdit{{Op: "set", Name: "X-F", Value: "1"}}}
		stripped := map[string]bool{}
		for _, p := range msg.Attachments() {
			ed.Strip = append(ed.Strip, Strip{Path: p.Path, Filename: p.Filename, Rule: "f"})
			stripped[carrierPath(msg, p)] = true
		}
		if err := mimeparse.CheckEdits(Plan(msg, ed)); err != nil {
			t.Fatalf("plan: %v", err)
		}
		var buf bytes.Buffer
		if _, err := Rewrite(&buf, bytes.NewReader(raw), msg, ed); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		after, _ := mimeparse.Parse(bytes.NewReader(buf.Bytes()), lim)
		for _, problem := range compareRewrite(msg, after, stripped) {
			if !strings.HasPrefix(problem, "new defect") {
				t.Errorf("%s", problem)
			}
		}
	})
}

// carrierPath is the path of the part whose bytes hold p: p's own, or for
// a part found inside a body that of the part carrying it.
func carrierPath(msg *mimeparse.Message, p *mimeparse.Part) string {
	for i, q := range msg.Parts {
		if q == p {
			return msg.Parts[msg.Carrier(i)].Path
		}
	}
	return ""
}
