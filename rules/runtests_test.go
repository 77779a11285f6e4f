package rules

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRunTests(t *testing.T) {
	s, err := Load(Config{Policies: []string{"testdata/valid.yaml"}}, nil)
	tcheck(t, err, "load")
	res := s.RunTests()
	if len(res) != 7 {
		t.Fatalf("got %d results, want 7", len(res))
	}
	for _, r := range res {
		if !r.Pass {
			t.Errorf("%s:%d: %s: %q", r.File, r.Line, r.Name, r.Problems)
		}
	}
	tcompare(t, "first", [3]any{res[0].File, res[0].Line, res[0].Name}, [3]any{filepath.Join("testdata", "valid.yaml"), 48, "external mail is tagged"})
	// Each test gets a fresh State: running again greylists again.
	tcompare(t, "rerun", s.RunTests()[5].Pass, true)
}

func TestRunTestsReportsFailures(t *testing.T) {
	s, err := Load(Config{Policies: []string{"failing-tests.yaml"}, BaseDir: "testdata"}, nil)
	tcheck(t, err, "load")
	res := s.RunTests()
	tcompare(t, "results", len(res), 2)
	tcompare(t, "pass", [2]bool{res[0].Pass, res[1].Pass}, [2]bool{false, true})
	tcompare(t, "problems", res[0].Problems, []string{
		"verdict: want reject, got accept",
		"rules: missing other; unexpected tag",
		"stripped: missing evil.exe",
		`headers: X-A: want "2", got add "1"`,
		`headers: X-B: want "3", got no edit`,
		"score: want 1, got 2",
		"tags: missing u; unexpected t",
	})
}

func TestRunTestsMissingMessage(t *testing.T) {
	s := mustLoad(t, "rules: []\ntests:\n  - message: nowhere.eml\n    expect: {verdict: accept}\n", nil, nil)
	res := s.RunTests()
	if len(res) != 1 || res[0].Pass || len(res[0].Problems) != 1 || res[0].Line != 3 {
		t.Fatalf("got %+v", res)
	}
}

// TestRunTestsFacts: a test gives the facts the dialogue or a server would
// compute with facts:, and a bad value is a load error.
func TestRunTestsFacts(t *testing.T) {
	s, err := Load(Config{Policies: []string{"testdata/facts-tests.yaml"}}, nil)
	tcheck(t, err, "load")
	res := s.RunTests()
	tcompare(t, "results", len(res), 2)
	for _, r := range res {
		if !r.Pass {
			t.Errorf("%s:%d: %s: %q", r.File, r.Line, r.Name, r.Problems)
		}
	}
	_, err = LoadFS(fsOf("rules: []\ntests:\n  - facts: {client: {pregreet: maybe}}\n    expect: {verdict: accept}\n"), Config{Policies: []string{"p.yaml"}}, nil)
	if err == nil || !strings.Contains(err.Error(), `p.yaml:3:32: tests: facts: client: pregreet: "maybe" is not true or false`) {
		t.Fatalf("bad fact: %v", err)
	}
}
