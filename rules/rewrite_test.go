package rules

import (
	"bytes"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// miniParse is a test-only reader for the simple messages below: one header
// block and at most one level of multipart. It records the offsets the
// rewriter needs, computed from the raw bytes, so Plan can be tested
// without the real parser.
func miniParse(t *testing.T, raw string) *mimeparse.Message {
	t.Helper()
	fields, body := miniHeader(raw, 0)
	msg := &mimeparse.Message{Fields: fields, Size: int64(len(raw))}
	ct := strings.ToLower(rwFirst(fields, "Content-Type"))
	root := &mimeparse.Part{Path: "0", Parent: -1, BodyOffset: body, EndOffset: int64(len(raw))}
	msg.Parts = append(msg.Parts, root)
	i := strings.Index(ct, "boundary=")
	if !strings.HasPrefix(ct, "multipart/") || i < 0 {
		root.Path = "1"
		return msg
	}
	root.IsMultipart = true
	b := strings.Trim(rwFirst(fields, "Content-Type")[i+len("boundary="):], "\"")
	delim := "--" + b
	n := 0
	pos := strings.Index(raw, delim)
	for pos >= 0 {
		lineEnd := strings.IndexByte(raw[pos:], '\n')
		if strings.HasPrefix(raw[pos+len(delim):], "--") || lineEnd < 0 {
			break
		}
		start := pos + lineEnd + 1
		next := strings.Index(raw[start:], delim)
		if next < 0 {
			t.Fatalf("miniParse: no closing delimiter")
		}
		end := start + next
		end-- // the LF of the break before the delimiter
		if raw[end-1] == '\r' {
			end--
		}
		pf, pb := miniHeader(raw, int64(start))
		n++
		msg.Parts = append(msg.Parts, &mimeparse.Part{
			Path: rwItoa(n), Depth: 1, Fields: pf, Filename: rwFilename(pf),
			HeaderOffset: int64(start), BodyOffset: pb, EndOffset: int64(end),
		})
		pos = start + next
	}
	return msg
}

func rwItoa(n int) string { return string(rune('0' + n)) }

func rwFirst(fs []mimeparse.Field, name string) string {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func rwFilename(fs []mimeparse.Field) string {
	v := rwFirst(fs, "Content-Disposition")
	if i := strings.Index(v, "filename=\""); i >= 0 {
		return strings.SplitN(v[i+10:], "\"", 2)[0]
	}
	return ""
}

// miniHeader reads header fields from off to the blank line.
func miniHeader(raw string, off int64) ([]mimeparse.Field, int64) {
	var fs []mimeparse.Field
	pos := int(off)
	for pos < len(raw) {
		if raw[pos] == '\n' {
			return fs, int64(pos + 1)
		}
		if strings.HasPrefix(raw[pos:], "\r\n") {
			return fs, int64(pos + 2)
		}
		end := pos
		for {
			nl := strings.IndexByte(raw[end:], '\n')
			end += nl + 1
			if end >= len(raw) || (raw[end] != ' ' && raw[end] != '\t') {
				break
			}
		}
		line := raw[pos:end]
		colon := strings.IndexByte(line, ':')
		rawv := strings.TrimRight(line[colon+1:], "\r\n")
		val := strings.TrimSpace(strings.NewReplacer("\r\n", "", "\n", "").Replace(rawv))
		fs = append(fs, mimeparse.Field{Name: line[:colon], Value: val, Raw: rawv, Start: int64(pos), End: int64(end)})
		pos = end
	}
	return fs, int64(pos)
}

func rewrite(t *testing.T, raw string, ed *Edits) string {
	t.Helper()
	msg := miniParse(t, raw)
	var out bytes.Buffer
	n, err := Rewrite(&out, strings.NewReader(raw), msg, ed)
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if n != int64(out.Len()) {
		t.Fatalf("Rewrite returned %d, wrote %d", n, out.Len())
	}
	return out.String()
}

const simpleMsg = "Received: from a\r\nSubject: Hello\r\nX-Internal-Route: a\r\nTo: b@example.net\r\nX-Internal-Route: b\r\n\r\nbody\r\n"

func TestPlanHeaders(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		ed   Edits
		want string
	}{
		{"nothing", simpleMsg, Edits{}, simpleMsg},
		{"add", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-External", Value: "yes"}}},
			"X-External: yes\r\n" + simpleMsg},
		{"add-two-in-order", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "A", Value: "1"}, {Op: "add", Name: "B", Value: "2"}}},
			"A: 1\r\nB: 2\r\n" + simpleMsg},
		{"remove-all-instances", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "remove", Name: "x-internal-route"}}},
			"Received: from a\r\nSubject: Hello\r\nTo: b@example.net\r\n\r\nbody\r\n"},
		{"set", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "set", Name: "X-Internal-Route", Value: "c"}}},
			"X-Internal-Route: c\r\nReceived: from a\r\nSubject: Hello\r\nTo: b@example.net\r\n\r\nbody\r\n"},
		{"remove-drops-earlier-add", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-Tag", Value: "1"}, {Op: "remove", Name: "X-Tag"}}},
			simpleMsg},
		{"set-replaces-earlier-add", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-Tag", Value: "1"}, {Op: "set", Name: "X-Tag", Value: "2"}}},
			"X-Tag: 2\r\n" + simpleMsg},
		{"injection-neutralised", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-Subj", Value: "a\r\nBcc: evil@example.org"}}},
			"X-Subj: a  Bcc: evil@example.org\r\n" + simpleMsg},
		{"bad-name-chars-dropped", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X Bad:Name", Value: "v"}}},
			"XBadName: v\r\n" + simpleMsg},
		{"non-ascii-encoded", simpleMsg, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-Class", Value: "intern – vertraulich"}}},
			"X-Class: =?utf-8?q?intern_=E2=80=93_vertraulich?=\r\n" + simpleMsg},
		{"lf-style", "Subject: a\nFrom: b\n\nbody\n", Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-A", Value: "1"}}},
			"X-A: 1\nSubject: a\nFrom: b\n\nbody\n"},
		{"fold-long", "Subject: a\r\n\r\nb\r\n", Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-Long", Value: strings.Repeat("word ", 20) + "end"}}},
			"X-Long: word word word word word word word word word word word word word word\r\n word word word word word word end\r\nSubject: a\r\n\r\nb\r\n"},
		{"subject-prefix", simpleMsg, Edits{SubjectPrefix: "[EXT] "},
			strings.Replace(simpleMsg, "Subject: Hello", "Subject: [EXT] Hello", 1)},
		{"subject-prefix-once", strings.Replace(simpleMsg, "Hello", "[EXT] Hello", 1), Edits{SubjectPrefix: "[EXT] "},
			strings.Replace(simpleMsg, "Hello", "[EXT] Hello", 1)},
		{"subject-prefix-encoded-word", "Subject: =?UTF-8?Q?R=C3=A9union?=\r\n\r\nb\r\n", Edits{SubjectPrefix: "[EXT]"},
			"Subject: [EXT] =?UTF-8?Q?R=C3=A9union?=\r\n\r\nb\r\n"},
		{"subject-prefix-non-ascii", "Subject: Hello\r\n\r\nb\r\n", Edits{SubjectPrefix: "[Extérieur] "},
			"Subject: =?utf-8?q?[Ext=C3=A9rieur]?= Hello\r\n\r\nb\r\n"},
		{"subject-prefix-folded", "Subject: a\r\n b\r\nTo: c\r\n\r\nb\r\n", Edits{SubjectPrefix: "[EXT] "},
			"Subject: [EXT] a\r\n b\r\nTo: c\r\n\r\nb\r\n"},
		{"subject-prefix-missing", "To: c\r\n\r\nb\r\n", Edits{SubjectPrefix: "[EXT] "},
			"Subject: [EXT]\r\nTo: c\r\n\r\nb\r\n"},
		{"subject-prefix-on-set", simpleMsg, Edits{SubjectPrefix: "[EXT] ", Headers: []HeaderEdit{{Op: "set", Name: "Subject", Value: "New"}}},
			"Subject: [EXT] New\r\nReceived: from a\r\nX-Internal-Route: a\r\nTo: b@example.net\r\nX-Internal-Route: b\r\n\r\nbody\r\n"},
		{"subject-prefix-after-remove", simpleMsg, Edits{SubjectPrefix: "[EXT] ", Headers: []HeaderEdit{{Op: "remove", Name: "Subject"}}},
			"Subject: [EXT]\r\nReceived: from a\r\nX-Internal-Route: a\r\nTo: b@example.net\r\nX-Internal-Route: b\r\n\r\nbody\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rewrite(t, tc.raw, &tc.ed); got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

const mixedMsg = "From: a@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n" +
	"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nHello\r\n" +
	"--XX\r\nContent-Type: application/octet-stream; name=\"invoice.exe\"\r\nContent-Transfer-Encoding: base64\r\nX-Keep: 1\r\n" +
	"Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nTVqQAAMAAAAEAAAA\r\nTVqQAAMAAAAEAAAA\r\n" +
	"--XX\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nJVBERi0=\r\n--XX--\r\n"

func TestPlanStrip(t *testing.T) {
	notice := func(eol, file, rule string) string {
		return "Content-Type: text/plain; charset=utf-8" + eol + "Content-Transfer-Encoding: quoted-printable" + eol +
			"Content-Disposition: inline" + eol
	}
	crlfWant := strings.Replace(mixedMsg,
		"Content-Type: application/octet-stream; name=\"invoice.exe\"\r\nContent-Transfer-Encoding: base64\r\nX-Keep: 1\r\n"+
			"Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nTVqQAAMAAAAEAAAA\r\nTVqQAAMAAAAEAAAA",
		notice("\r\n", "", "")+"X-Keep: 1\r\n\r\nThe attachment \"invoice.exe\" was removed from this message.\r\nRemoved by mailgate, rule block-exe.\r\n", 1)
	lfMsg := strings.ReplaceAll(mixedMsg, "\r\n", "\n")
	tests := []struct {
		name string
		raw  string
		ed   Edits
		want string
	}{
		{"crlf", mixedMsg, Edits{Strip: []Strip{{Path: "2", Filename: "invoice.exe", Rule: "block-exe"}}}, crlfWant},
		{"lf", lfMsg, Edits{Strip: []Strip{{Path: "2", Filename: "invoice.exe", Rule: "block-exe"}}}, strings.ReplaceAll(crlfWant, "\r\n", "\n")},
		{"unknown-path", mixedMsg, Edits{Strip: []Strip{{Path: "9", Rule: "x"}}}, mixedMsg},
		{"same-part-twice", mixedMsg, Edits{Strip: []Strip{{Path: "2", Filename: "invoice.exe", Rule: "block-exe"}, {Path: "2", Filename: "invoice.exe", Rule: "other"}}},
			strings.Replace(crlfWant, "rule block-exe.", "rule block-exe, other.", 1)},
		{"strip-and-header", mixedMsg, Edits{Strip: []Strip{{Path: "2", Filename: "invoice.exe", Rule: "block-exe"}},
			Headers: []HeaderEdit{{Op: "add", Name: "X-Stripped", Value: "1"}}}, "X-Stripped: 1\r\n" + crlfWant},
		{"root-leaf", "From: a\r\nContent-Type: text/plain\r\nSubject: s\r\n\r\nbegin 644 a.exe\r\nM\r\nend\r\n",
			Edits{Strip: []Strip{{Path: "1", Filename: "a.exe", Rule: "uu"}}},
			"From: a\r\nMIME-Version: 1.0\r\n" + notice("\r\n", "", "") + "Subject: s\r\n\r\nThe attachment \"a.exe\" was removed from this message.\r\nRemoved by mailgate, rule uu.\r\n"},
		{"bidi-and-qp", mixedMsg, Edits{Strip: []Strip{{Path: "2", Filename: "r\u202efdp.exe=é", Rule: "bidi"}}},
			strings.Replace(strings.Replace(crlfWant, "\"invoice.exe\"", "\"rfdp.exe=3D=C3=A9\"", 1), "block-exe", "bidi", 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rewrite(t, tc.raw, &tc.ed)
			if got != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			// The structure survives: same number of parts, the untouched
			// parts byte-identical.
			before, after := miniParse(t, tc.raw), miniParse(t, got)
			if len(before.Parts) != len(after.Parts) {
				t.Fatalf("parts: %d before, %d after", len(before.Parts), len(after.Parts))
			}
			for i, p := range before.Parts[1:] {
				if p.Path == "2" && len(tc.ed.Strip) > 0 && tc.ed.Strip[0].Path == "2" {
					continue
				}
				q := after.Parts[i+1]
				if tc.raw[p.BodyOffset:p.EndOffset] != got[q.BodyOffset:q.EndOffset] {
					t.Errorf("part %s body changed", p.Path)
				}
			}
		})
	}
}

func TestPlanEmbeddedStripsEnclosingPart(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: application/octet-stream; name=invoice.exe\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n" +
		"begin 644 x.exe\r\nJ35J0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  D \"0 )  \r\n`\r\nend\r\n--b--\r\n"
	msg, err := mimeparse.Parse(strings.NewReader(raw), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Parts) != 4 || msg.Parts[3].Path != "2.u1" {
		t.Fatalf("parts: %d, want 0, 1, 2, 2.u1", len(msg.Parts))
	}
	p2 := msg.Parts[2]
	edits := Plan(msg, &Edits{Strip: []Strip{{Path: "2.u1", Rule: "uu"}, {Path: "2", Rule: "exe"}}})
	if err := mimeparse.CheckEdits(edits); err != nil {
		t.Fatal(err)
	}
	var body string
	for _, e := range edits {
		if e.Start == p2.BodyOffset {
			body = string(e.Data)
		}
	}
	for _, want := range []string{"\"x.exe\"", "\"invoice.exe\"", "rule uu, exe."} {
		if !strings.Contains(body, want) {
			t.Errorf("notice %q lacks %s", body, want)
		}
	}
}

func TestQPLines(t *testing.T) {
	long := strings.Repeat("a", 100)
	got := qpLines([]string{long, "x = y ", "é"}, "\r\n")
	want := strings.Repeat("a", 75) + "=\r\n" + strings.Repeat("a", 25) + "\r\nx =3D y=20\r\n=C3=A9"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestPlanNestedStrip: stripping a container and a part inside it gives one
// notice for the container and valid, non-overlapping edits.
func TestPlanNestedStrip(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--o\r\nContent-Type: application/zip; name=\"a.zip\"\r\n\r\nUEsDBA==\r\n--o--\r\n"
	msg := miniParse(t, raw)
	// Pretend part 2 holds a part 2.1 inside its body.
	p2 := msg.Parts[2]
	msg.Parts = append(msg.Parts, &mimeparse.Part{Path: "2.1", Depth: 2, Parent: 2, Filename: "inner.exe",
		HeaderOffset: p2.BodyOffset, BodyOffset: p2.BodyOffset + 2, EndOffset: p2.EndOffset})
	edits := Plan(msg, &Edits{Strip: []Strip{{Path: "2.1", Rule: "r"}, {Path: "2", Rule: "r"}}})
	if err := mimeparse.CheckEdits(edits); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := mimeparse.Splice(&out, strings.NewReader(raw), edits); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "was removed"); n != 1 {
		t.Fatalf("%d notices in\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "(part 2)") || !strings.HasSuffix(out.String(), "\r\n--o--\r\n") {
		t.Fatalf("got\n%s", out.String())
	}
}

// TestPlanStripCoversEmptyLastPart: a part inside a stripped one is covered
// by its notice even where their offsets touch. An empty last part at the
// end of input (no close delimiter) starts where its multipart ends; found
// by offsets it looked outside the stripped range and got a notice of its
// own after the enclosing one.
func TestPlanStripCoversEmptyLastPart(t *testing.T) {
	raw := "Content-Type: multipart/mixed; boundary=\"1\"\r\n\r\n--1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--1\r\n"
	msg, err := mimeparse.Parse(strings.NewReader(raw), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Parts) != 3 || msg.Parts[2].HeaderOffset != int64(len(raw)) {
		t.Fatalf("want an empty part 2 at the end of input, got %d parts", len(msg.Parts))
	}
	var out bytes.Buffer
	if _, err := Rewrite(&out, strings.NewReader(raw), msg, &Edits{Strip: []Strip{{Path: "0", Rule: "all"}, {Path: "2", Rule: "empty"}}}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "Removed by mailgate"); n != 1 {
		t.Fatalf("%d notices in\n%s", n, out.String())
	}
}
