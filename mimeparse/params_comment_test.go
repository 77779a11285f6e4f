package mimeparse

import (
	"slices"
	"testing"
)

func TestParamComments(t *testing.T) {
	m := parseMediaHeader(`attachment; (filename="a.txt") filename="a.js"`)
	all := m.getAll("filename")
	if !slices.Contains(all, "a.js") || !slices.Contains(all, "a.txt") {
		t.Fatalf("filename readings %q, want a.js and a.txt", all)
	}
	if !slices.Contains(m.defects, DefectCommentInParameters) {
		t.Fatalf("defects %q", m.defects)
	}
	m = parseMediaHeader(`attachment; filename="b (1).pdf"`)
	if v, _ := m.get("filename"); v != "b (1).pdf" || len(m.defects) > 0 {
		t.Fatalf("quoted parentheses: %q %q", v, m.defects)
	}
}
