package policies_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mailgate/policies"
	"mailgate/rules"
)

// packLists are the lists a pack needs, as its header comment says.
var packLists = map[string]map[string]string{
	"compliance-headers.yaml": {"internal_domains": "lists/internal_domains.txt"},
}

func packs(t *testing.T) []string {
	t.Helper()
	names, err := fs.Glob(policies.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 5 {
		t.Fatalf("only %d packs embedded: %v", len(names), names)
	}
	return names
}

func load(t *testing.T, name string) *rules.Set {
	t.Helper()
	set, err := rules.Load(rules.Config{Policies: []string{name}, Lists: packLists[name]},
		rules.NewState(1024, func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }))
	if err != nil {
		t.Fatalf("%s does not load:\n%v", name, err)
	}
	return set
}

// TestPacks loads (lints) every shipped pack and runs the tests written
// inside it; every pack must have tests and pass them all.
func TestPacks(t *testing.T) {
	for _, name := range packs(t) {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			set := load(t, name)
			res := set.RunTests()
			if len(res) == 0 {
				t.Fatalf("%s has no tests:", name)
			}
			for _, r := range res {
				if !r.Pass {
					t.Errorf("%s:%d: %s: %s", filepath.Base(r.File), r.Line, r.Name, strings.Join(r.Problems, "; "))
				}
			}
		})
	}
}

// TestDefaultEmbedded loads the default pack from the embedded FS, as
// serve and check do without configuration.
func TestDefaultEmbedded(t *testing.T) {
	set, err := rules.LoadFS(policies.FS, rules.Config{Policies: []string{policies.Default}}, rules.NewState(16, nil))
	if err != nil {
		t.Fatalf("embedded %s: %v", policies.Default, err)
	}
	if len(set.RuleNames()) == 0 {
		t.Fatal("the default pack has no rules")
	}
}

// TestPacksTogether loads every pack at once, in the order a cautious
// deployment would list them: rule names must not clash across packs that
// are meant to be combined.
func TestPacksTogether(t *testing.T) {
	order := []string{"default.yaml", "dangerous-attachments.yaml", "office-macros.yaml", "compliance-headers.yaml", "spam-basics.yaml"}
	set, err := rules.Load(rules.Config{Policies: order, Lists: packLists["compliance-headers.yaml"]}, rules.NewState(16, nil))
	if err != nil {
		t.Fatalf("every shipped pack at once: %v", err)
	}
	if n := len(set.RuleNames()); n < 25 {
		t.Errorf("every pack together has %d rules; some were lost", n)
	}
	// Each pack's tests run against its own rules, so a configuration
	// that loads every pack passes every pack's tests.
	results := set.RunTests()
	failed := 0
	for _, r := range results {
		if !r.Pass {
			failed++
			t.Errorf("%s:%d: %s: %s", r.File, r.Line, r.Name, strings.Join(r.Problems, "; "))
		}
	}
	t.Logf("every pack together: %d tests, %d failed", len(results), failed)
	if len(results) < 80 {
		t.Errorf("%d tests ran; every pack's tests should", len(results))
	}
}

// TestLookupFactPack: the authentication pack reads lookup facts:
// without the configuration that feeds them (serve, check -c, lint -c)
// it is refused, naming the section to add; with them it loads.
func TestLookupFactPack(t *testing.T) {
	const name = "facts/authentication.yaml"
	_, err := rules.Load(rules.Config{Policies: []string{name}}, nil)
	if err == nil || !strings.Contains(err.Error(), "in the configuration") {
		t.Errorf("%s loads without the config sections that feed its facts: %v", name, err)
	}
	fed := rules.FactSources{DNS: true, DNSBL: []string{"spamhaus"}, SPF: true, DKIM: true, DMARC: true, ARC: true}
	if _, err := rules.Load(rules.Config{Policies: []string{name}, Facts: fed}, nil); err != nil {
		t.Errorf("authentication pack with its sections configured: %v", err)
	}
}
