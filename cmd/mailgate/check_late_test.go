package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckLateHeaderFields: a spoofed X-Internal-Route after 5,000 X-Pad
// fields (60 KB, under Postfix's 100 KB header limit) never reaches the
// upstream. The shipped compliance pack refuses the message (defence in
// depth); without that rule, the rewrite still removes the late field.
func TestCheckLateHeaderFields(t *testing.T) {
	const src = "../../testdata/packs/late-internal-route.eml"
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	args := func(out, pack string) []string {
		return []string{"--json", "--out", out, "-p", pack, "-l", "internal_domains=../../policies/lists/internal_domains.txt",
			"--from", "alice@corp.example.org", src}
	}

	out := t.TempDir()
	code, stdout, stderr := runCheckT(t, args(out, "../../policies/compliance-headers.yaml")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j := decodeLines(t, stdout)[0]
	if j.Verdict != "reject" || strings.Join(j.Rules, ",") != "compliance-header-too-large" || !strings.HasPrefix(j.Reply, "554 5.6.0 ") {
		t.Errorf("shipped pack: got %+v", j)
	}

	pack, err := os.ReadFile("../../policies/compliance-headers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	from := strings.Index(string(pack), "  - name: compliance-header-too-large")
	to := strings.Index(string(pack), "  - name: tag-external")
	end := strings.Index(string(pack), "\ntests:")
	if from < 0 || to < from || end < to {
		t.Fatal("compliance-headers.yaml no longer has the expected rules")
	}
	blind := filepath.Join(t.TempDir(), "blind.yaml")
	if err := os.WriteFile(blind, append(pack[:from:from], pack[to:end+1]...), 0o644); err != nil {
		t.Fatal(err)
	}
	out = t.TempDir()
	code, stdout, stderr = runCheckT(t, args(out, blind)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	j = decodeLines(t, stdout)[0]
	if j.Verdict != "accept" || strings.Join(j.Rules, ",") != "remove-internal-routing,classify" {
		t.Fatalf("pack without the refusal: got %+v", j)
	}
	got, err := os.ReadFile(filepath.Join(out, outRel(src)))
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Classification: INTERNAL; sender-domain=corp.example.org\r\n" +
		strings.Replace(string(orig), "X-Internal-Route: spoofed.corp.example.org\r\n", "", 1)
	if !strings.Contains(string(orig), "\r\nX-Internal-Route: spoofed") || strings.Contains(string(got), "X-Internal-Route") || string(got) != want {
		t.Errorf("rewritten copy: %d bytes, want %d; X-Internal-Route left: %v", len(got), len(want), strings.Contains(string(got), "X-Internal-Route"))
	}
}
