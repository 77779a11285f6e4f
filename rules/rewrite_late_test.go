package rules

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"mailgate/mimeparse"
)

// padded is a header of 5,000 X-Pad fields (60 KB, under Postfix's 100 KB
// header limit) with a spoofed X-Internal-Route and the Subject after them:
// past the parser's 5,000-field index.
var padded = "From: a@example.org\r\n" + strings.Repeat("X-Pad: pad\r\n", 5000) +
	"X-Internal-Route: spoofed\r\nSubject: Hello\r\nX-Internal-Route: spoofed-2\r\n\r\nbody\r\n"

func parseReal(t *testing.T, raw string, lim mimeparse.Limits) *mimeparse.Message {
	t.Helper()
	msg, err := mimeparse.Parse(strings.NewReader(raw), lim)
	tcheck(t, err, "parse")
	return msg
}

func rewriteReal(t *testing.T, raw string, msg *mimeparse.Message, ed *Edits) string {
	t.Helper()
	var out bytes.Buffer
	n, err := Rewrite(&out, strings.NewReader(raw), msg, ed)
	tcheck(t, err, "Rewrite")
	if n != int64(out.Len()) {
		t.Fatalf("Rewrite returned %d, wrote %d", n, out.Len())
	}
	return out.String()
}

// TestRewriteLateFields: remove, set and subject_prefix see the fields past
// the parser's index (the header is re-read), and every other byte stays.
func TestRewriteLateFields(t *testing.T) {
	noRoute := strings.NewReplacer("X-Internal-Route: spoofed\r\n", "", "X-Internal-Route: spoofed-2\r\n", "").Replace(padded)
	cases := []struct {
		name string
		lim  func(*mimeparse.Limits)
		ed   Edits
		want string
	}{
		{"remove", nil, Edits{Headers: []HeaderEdit{{Op: "remove", Name: "X-Internal-Route"}}}, noRoute},
		{"set", nil, Edits{Headers: []HeaderEdit{{Op: "set", Name: "x-internal-route", Value: "ours"}}},
			"x-internal-route: ours\r\n" + noRoute},
		{"subject-prefix", nil, Edits{SubjectPrefix: "[EXT] "},
			strings.Replace(padded, "Subject: Hello", "Subject: [EXT] Hello", 1)},
		{"remove-past-header-bytes", func(l *mimeparse.Limits) { l.HeaderBytes = 1000 },
			Edits{Headers: []HeaderEdit{{Op: "remove", Name: "X-Internal-Route"}}}, noRoute},
		{"add-and-remove-pad", nil, Edits{Headers: []HeaderEdit{{Op: "add", Name: "X-A", Value: "1"}, {Op: "remove", Name: "X-Pad"}}},
			"X-A: 1\r\nFrom: a@example.org\r\nX-Internal-Route: spoofed\r\nSubject: Hello\r\nX-Internal-Route: spoofed-2\r\n\r\nbody\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lim := mimeparse.DefaultLimits()
			if c.lim != nil {
				c.lim(&lim)
			}
			msg := parseReal(t, padded, lim)
			if !msg.HeaderTruncated || msg.HasHeader("Subject") == false {
				t.Fatalf("HeaderTruncated %v, HasHeader(Subject) %v: the fixture no longer exercises the late fields",
					msg.HeaderTruncated, msg.HasHeader("Subject"))
			}
			got := rewriteReal(t, padded, msg, &c.ed)
			if got != c.want {
				t.Errorf("rewritten message differs (%d bytes, want %d); head %q; tail %q", len(got), len(c.want), head(got), tail(got))
			}
			if n := strings.Count("\r\n"+got, "\r\nSubject:"); n != 1 {
				t.Errorf("%d Subject fields", n)
			}
		})
	}
}

func head(s string) string { return s[:min(len(s), 60)] }
func tail(s string) string { return s[max(0, len(s)-120):] }

// TestRewriteLateHeaderTooLarge: a header that would have to be re-read
// past maxRescan is not edited at all (fail closed: nothing is written).
func TestRewriteLateHeaderTooLarge(t *testing.T) {
	defer func(v int64) { maxRescan = v }(maxRescan)
	maxRescan = 10000
	msg := parseReal(t, padded, mimeparse.DefaultLimits())
	var out bytes.Buffer
	n, err := Rewrite(&out, strings.NewReader(padded), msg, &Edits{Headers: []HeaderEdit{{Op: "remove", Name: "X-Internal-Route"}}})
	if !errors.Is(err, ErrHeaderTooLarge) || n != 0 || out.Len() != 0 {
		t.Fatalf("got %d bytes written, err %v; want nothing and ErrHeaderTooLarge", out.Len(), err)
	}
}

// TestHasHeaderLateField: a rule's HasHeader sees a field after 5,000.
func TestHasHeaderLateField(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: late\n    when: 'HasHeader(\"x-internal-route\")'\n"+
		"  - name: absent\n    when: 'HasHeader(\"X-Nope\")'\n", nil, nil)
	f := testFacts()
	f.Msg = parseReal(t, padded, mimeparse.DefaultLimits())
	v := s.NewEvaluator().Eval(StageData, f)
	tcompare(t, "errors", v.Errors, []error(nil))
	tcompare(t, "rules", v.Rules, []string{"late"})
}
