package mimeparse

import (
	"strings"
	"testing"
)

func TestFieldLineBreak(t *testing.T) {
	// "Subject" (7) + ":" (1) + Raw + the break: End-Start
	for _, tc := range []struct {
		name       string
		start, end int64
		raw, want  string
	}{
		{"crlf", 0, 16, " hello", "\r\n"},
		{"lf", 10, 25, " hello", "\n"},
		{"no break", 0, 14, " hello", ""},
		{"folded crlf", 0, 18, " a\r\n b c", "\r\n"},
		{"folded lf", 0, 14, " a\n b", "\n"},
		{"not from Parse", 0, 0, " x", ""},
		{"too long", 0, 40, " hello", ""},
		{"negative", 20, 10, " hello", ""},
	} {
		f := Field{Name: "Subject", Raw: tc.raw, Start: tc.start, End: tc.end}
		if got := FieldLineBreak(f); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestLineBreaksFromParse checks the helpers on the offsets Parse records.
func TestLineBreaksFromParse(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		want      []string // FieldLineBreak of each top-level field
		header    string   // HeaderLineBreak
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody", []string{"\r\n", "\r\n"}, "\r\n"},
		{"lf", "A: 1\nB: 2\n\nbody", []string{"\n", "\n"}, "\n"},
		{"mixed: the first tells", "A: 1\nB: 2\r\n\r\n", []string{"\n", "\r\n"}, "\n"},
		{"folded", "A: 1\r\n 2\r\nB: 3\n\n", []string{"\r\n", "\n"}, "\r\n"},
		{"last field at the end of input", "A: 1\r\nB: 2", []string{"\r\n", ""}, "\r\n"},
		{"only field at the end of input", "A: 1", []string{""}, ""},
		{"no header", "\r\nbody", nil, ""},
	} {
		m, err := Parse(strings.NewReader(tc.raw), DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Fields) != len(tc.want) {
			t.Fatalf("%s: %d fields, want %d", tc.name, len(m.Fields), len(tc.want))
		}
		for i, f := range m.Fields {
			if got := FieldLineBreak(f); got != tc.want[i] {
				t.Errorf("%s: field %s: %q, want %q", tc.name, f.Name, got, tc.want[i])
			}
		}
		if got := HeaderLineBreak(m.Fields); got != tc.header {
			t.Errorf("%s: header %q, want %q", tc.name, got, tc.header)
		}
	}
}
