package rules

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestCostBudget checks that a rule whose worst case is over CostBudget
// does not load, with the position of its when: and the estimate, and
// that the bounds come from the configured limits.
func TestCostBudget(t *testing.T) {
	cases := []struct {
		name   string
		when   string
		bounds Bounds
		want   string // "" loads
	}{
		{"triple nested over Parts", `any(Parts, any(Parts, any(Parts, .Path == "nope")))`, Bounds{},
			`p.yaml:3:12: rule r: when: estimated worst-case cost 7.0e+09 steps is over the budget of 1.0e+09 (mime_parts 1000, archive_entries 1000)`},
		{"triple nested with 100 parts", `any(Parts, any(Parts, any(Parts, .Path == "nope")))`, Bounds{MimeParts: 100}, ""},
		{"double nested over Parts", `any(Parts, any(Parts, .Path == "nope"))`, Bounds{}, ""},
		{"Parts × Archive, as the shipped packs", `any(Attachments, any(.Archive, .Executable) || any(.Names, # matches "x"))`, Bounds{}, ""},
		{"Text scanned once per part", `any(Parts, Text matches .Filename)`, Bounds{},
			`p.yaml:3:12: rule r: when: estimated worst-case cost 1.3e+09 steps`},
		{"Text scanned twice", `lower(Text) matches "verify your (account|password)"`, Bounds{}, ""},
		{"range over the message size", `any(0..Size, # > 0 && any(Parts, .Macros))`, Bounds{},
			`p.yaml:3:12: rule r: when: estimated worst-case cost`},
		{"let does not hide a collection", `let p = Parts; any(p, any(p, any(p, .Macros)))`, Bounds{},
			`p.yaml:3:12: rule r: when: estimated worst-case cost`},
		{"strip counts too", "filter(Parts, any(Parts, any(Parts, .Macros)))", Bounds{}, "SKIP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "rules:\n  - name: r\n    when: '" + tc.when + "'\n    action: reject\n"
			if tc.want == "SKIP" {
				src = "rules:\n  - name: r\n    strip: '" + tc.when + "'\n"
				tc.want = "p.yaml:3:13: rule r: strip: estimated worst-case cost 5.0e+09"
			}
			cfg := Config{Policies: []string{"p.yaml"}, Bounds: tc.bounds}
			_, err := LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, cfg, nil)
			ps := problems(err)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("does not load: %v", err)
			case tc.want != "" && (len(ps) != 1 || !strings.HasPrefix(ps[0], tc.want)):
				t.Fatalf("got %q, want one problem starting %q", ps, tc.want)
			}
		})
	}
}

// TestMemoryBudget checks that the VM stops a rule that builds a large
// array, under the cost budget but over MemoryBudget, with a rule error.
func TestMemoryBudget(t *testing.T) {
	s := mustLoad(t, "rules:\n  - name: big\n    when: 'len(map(0..2000000, #)) > 0'\n    action: reject\n", nil, nil)
	v := s.NewEvaluator().Eval(StageData, &Facts{})
	if v.Action != ActionTempfail || len(v.Errors) != 1 || !strings.Contains(v.Errors[0].Error(), "memory budget exceeded") {
		t.Fatalf("got %s %v, want a tempfail for the memory budget", v.Action, v.Errors)
	}
}
