package policies_test

import (
	"path/filepath"
	"strings"
	"testing"

	"mailgate/rules"
)

// TestFactPacks lints every pack of policies/facts/ (packs that read
// facts computed by servers: clamd, DNS) and runs its tests, which give
// those facts with the facts: key; every pack must have tests and pass
// them all.
func TestFactPacks(t *testing.T) {
	names, err := filepath.Glob("facts/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("no packs in policies/facts/: %v", err)
	}
	for _, name := range names {
		t.Run(strings.TrimSuffix(filepath.Base(name), ".yaml"), func(t *testing.T) {
			set, err := rules.Load(rules.Config{Policies: []string{name}, Facts: rules.FactSources{All: true}}, rules.NewState(1024, nil)) // as lint -p
			if err != nil {
				t.Fatalf("%s does not load:\n%v", name, err)
			}
			res := set.RunTests()
			if len(res) == 0 {
				t.Fatalf("%s has no tests", name)
			}
			for _, r := range res {
				if !r.Pass {
					t.Errorf("%s:%d: %s: %s", filepath.Base(r.File), r.Line, r.Name, strings.Join(r.Problems, "; "))
				}
			}
		})
	}
}
