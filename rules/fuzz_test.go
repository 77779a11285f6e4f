package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad: any policy bytes → Load never panics; an error is always a
// *LoadError whose every problem has a file and a position, and a policy
// that loads evaluates at every stage without panicking.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("rules:\n  - name: a\n    headers: {add: {X-A: '{{ Subject }} {{'}}\n"))
	f.Add([]byte("rules:\n  - {name: a, when: |\n      x\n  }\n"))
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "internal_domains.txt"), []byte("example.org\n10.0.0.0/8\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	cfg := Config{Policies: []string{"p.yaml"}, Lists: map[string]string{"internal_domains": "internal_domains.txt"}, BaseDir: dir}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := LoadFS(fstest.MapFS{"p.yaml": {Data: data}}, cfg, nil)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error without problems: %T %v", err, err)
			}
			for _, p := range le.Problems {
				if p.File != "p.yaml" || p.Line < 1 || p.Col < 1 {
					t.Fatalf("problem without a position: %+v", p)
				}
			}
			if !strings.HasPrefix(err.Error(), "p.yaml:") {
				t.Fatalf("Error() does not start with the position: %q", err.Error())
			}
			return
		}
		e := s.NewEvaluator()
		f := testFacts()
		f.Rcpt = "bob@example.org"
		for st := StageConnect; st <= StageData; st++ {
			e.Eval(st, f)
		}
		s.RunTests()
	})
}
